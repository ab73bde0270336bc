"""A real S3 client (boto3) for the archive tests, independent of tether's.

    s3.py ENDPOINT mkbucket BUCKET
    s3.py ENDPOINT list BUCKET            -> JSON [{key, size, sha256}]
    s3.py ENDPOINT get BUCKET KEY         -> the object's bytes on stdout
    s3.py ENDPOINT put BUCKET KEY TEXT
"""
import json
import sys

import boto3


def main():
    endpoint, op, bucket = sys.argv[1:4]
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="tether-test",
                      aws_secret_access_key="tether-test-secret", region_name="us-east-1")
    if op == "mkbucket":
        s3.create_bucket(Bucket=bucket)
    elif op == "list":
        out = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                meta = s3.head_object(Bucket=bucket, Key=o["Key"]).get("Metadata", {})
                out.append({"key": o["Key"], "size": o["Size"], "sha256": meta.get("sha256")})
        print(json.dumps(out))
    elif op == "put":
        s3.put_object(Bucket=bucket, Key=sys.argv[4], Body=sys.argv[5].encode())
    elif op == "get":
        sys.stdout.buffer.write(s3.get_object(Bucket=bucket, Key=sys.argv[4])["Body"].read())
    else:
        sys.exit(f"unknown op {op}")


main()
