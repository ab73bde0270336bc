"""A real S3 client (boto3) for the archive tests, independent of tether's.

    s3.py ENDPOINT mkbucket BUCKET
    s3.py ENDPOINT list BUCKET            -> JSON [{key, size, sha256}]
    s3.py ENDPOINT get BUCKET KEY         -> the object's bytes on stdout
    s3.py ENDPOINT put BUCKET KEY TEXT
    s3.py ENDPOINT delete BUCKET KEY
    s3.py ENDPOINT mkuser BUCKET POLICY   -> JSON {id, secret}: an IAM user
                                            with that inline policy, and its key

Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY when set, else the
tests' own (which moto accepts unless it checks credentials).
"""
import json
import os
import sys

import boto3


def main():
    endpoint, op, bucket = sys.argv[1:4]
    creds = dict(
        endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "tether-test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "tether-test-secret"))
    s3 = boto3.client("s3", **creds)
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
    elif op == "delete":
        s3.delete_object(Bucket=bucket, Key=sys.argv[4])
    elif op == "mkuser":
        iam = boto3.client("iam", **creds)
        iam.create_user(UserName="uploader")
        iam.put_user_policy(UserName="uploader", PolicyName="archive",
                            PolicyDocument=sys.argv[4])
        key = iam.create_access_key(UserName="uploader")["AccessKey"]
        print(json.dumps({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
    else:
        sys.exit(f"unknown op {op}")


main()
