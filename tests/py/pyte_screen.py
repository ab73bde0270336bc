"""Renders a byte stream with pyte, an emulator independent of tether's
(and one without REP), and prints the screen as JSON: each row's cells
(text and attributes) and the cursor. Used by tests/fidelity.rs.

Usage: pyte_screen.py COLS ROWS FILE
"""
import json
import sys
import unicodedata

import pyte


def main():
    cols, rows, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    with open(path, "rb") as f:
        stream.feed(f.read())
    cells = []
    for y in range(rows):
        row = []
        for x in range(cols):
            c = screen.buffer[y][x]
            # The model composes decomposed text and keeps no variation
            # selectors (docs/ARCHITECTURE.md): compare what is drawn.
            data = unicodedata.normalize("NFC", c.data).replace("\ufe0f", "")
            row.append([data, c.fg, c.bg, c.bold, c.italics, c.underscore,
                        c.reverse, c.strikethrough, c.blink])
        cells.append(row)
    text = [line.rstrip() for line in screen.display]
    print(json.dumps({"text": text, "cells": cells,
                      "cursor": [screen.cursor.x, screen.cursor.y]}))


if __name__ == "__main__":
    main()
