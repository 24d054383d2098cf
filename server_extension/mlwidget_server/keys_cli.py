"""``jupyter mlwidget keys create|list|revoke``: the owner's scoped keys, from the command line
(the same keys as ``MLModel.share`` and the model page's Share panel; see mlwidget/keys.py)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from mlwidget import MLWidgetError
from mlwidget.access import ROLES
from mlwidget.keys import KeyRing
from mlwidget.store import default_root

COLUMNS = ("id", "label", "role", "models", "status", "expires", "uses", "last_used")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter mlwidget keys",
        description=(
            "Scoped keys: let a program or a colleague call some models with a role (viewer, "
            "trainer, owner) without the server's token. Send a key as "
            "'Authorization: Bearer <key>'; it opens only mlwidget's routes."
        ),
    )
    parser.add_argument("--store", help="the model store (default: $MLWIDGET_STORE or Jupyter's)")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="make a key and print it (shown only this once)")
    create.add_argument("--role", choices=ROLES, default="viewer")
    create.add_argument(
        "--models", default="*", help="a model name, a glob such as 'sales-*', or '*' (all)"
    )
    create.add_argument("--label", default="", help="who or what it is for (shown in the audit)")
    create.add_argument("--expires", default=None, help="30d, 12h, 90m, 2w, an ISO date; never")
    create.add_argument("--rate", type=int, default=None, help="requests per minute")
    create.add_argument(
        "--origin", action="append", default=[], help="a web page origin that may send it (CORS)"
    )
    sub.add_parser("list", help="every key: label, role, models, status, expiry, use")
    revoke = sub.add_parser("revoke", help="refuse a key from its next request on")
    revoke.add_argument("key", help="the key's id or its label")
    for command in (create, sub.choices["list"], revoke):
        command.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    ring = KeyRing(args.store or default_root())
    try:
        if args.command == "create":
            key, text = ring.create(
                args.role, args.models, args.label, args.expires, args.rate, args.origin
            )
            if args.json:
                print(json.dumps({"key": text, **key.public()}))
            else:
                print(f"key: {text}")
                print(f"({key.role} on {key.models}; id {key.id}; shown only now: keep it safe)")
        elif args.command == "list":
            rows = [key.public() for key in ring.list()]
            if args.json:
                print(json.dumps(rows))
            else:
                print("\t".join(COLUMNS))
                for row in rows:
                    print("\t".join("" if row[c] is None else str(row[c]) for c in COLUMNS))
        else:
            key = ring.revoke(args.key)
            print(json.dumps(key.public()) if args.json else f"revoked {key.name}")
    except MLWidgetError as exc:
        print(f"jupyter mlwidget keys: {exc}", file=sys.stderr)
        return 2
    return 0
