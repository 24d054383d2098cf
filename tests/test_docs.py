"""README.md documents everything a user can set or call: it fails when an option, a server
trait, a `jupyter mlwidget` option, or a REST query key or action is missing from the Reference.

The lists come from the code (OPTION_NAMES, MLWidgetApp's config traits, the command's parser,
the handlers' query keys and ACTIONS), so a new one cannot ship undocumented.
"""

from __future__ import annotations

import re
import shlex

import pytest
from conftest import ROOT
from jupyter_server.extension.application import ExtensionApp
from mlwidget_server import MLWidgetApp
from mlwidget_server.main import build_parser

from mlwidget import api as rest
from mlwidget.options import OPTION_NAMES

README = (ROOT / "README.md").read_text()
HANDLERS_SOURCE = (ROOT / "server_extension" / "mlwidget_server" / "handlers.py").read_text()
# The contract's REST vocabulary (section 4), whatever the handlers' code looks like.
CONTRACT_QUERY_KEYS = {
    "_model",
    "_download",
    "_cache",
    "_params",
    "_format",
    "_action",
    "_metric",
    "target_col",
    "delete",
}


def section(heading: str, text: str = README) -> str:
    """The text under a Markdown heading (``## X`` or ``### X``), up to the next heading of the
    same or a higher level."""
    match = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.M)
    assert match, f"README.md has no heading {heading!r}"
    level = len(match.group(1))
    rest_ = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest_, re.M)
    return rest_[: end.start()] if end else rest_


REFERENCE = section("Reference")


def table_names(text: str) -> set[str]:
    """The code spans that start a table row: ``| `name` ... |``."""
    return set(re.findall(r"^\|\s*`([^`]+)`", text, re.M))


def mentions(key: str, text: str) -> bool:
    """``key`` appears as code (`key`, `key=...`, `?key`, `&key`, `key&...`)."""
    return bool(re.search(rf"(`|[?&]){re.escape(key)}(`|=|&|\s)", text))


def query_keys_in_handlers() -> set[str]:
    """Every query key the handlers read."""
    patterns = [
        r'last\(args, "([^"]+)"\)',
        r'"([^"]+)" in args',
        r'get_query_argument\("([^"]+)"',
        r'key == "([^"]+)"',
    ]
    keys = {k for p in patterns for k in re.findall(p, HANDLERS_SOURCE)}
    for group in re.findall(r"key in \(([^)]*)\)", HANDLERS_SOURCE):
        keys.update(re.findall(r'"([^"]+)"', group))
    return keys


def test_readme_starts_with_the_two_commands() -> None:
    lines = README.splitlines()
    assert lines[0] == "# mlwidget"
    assert lines[2] == "```bash"
    # the main command installs the runtime only (no apt, no test extras) and serves the demo
    start = lines[3].split("#")[0].strip()
    assert (
        start == "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/jupyter mlwidget"
    )
    assert lines[5] == "```"
    assert lines[4].split("#")[0].strip() == "bash .ci/test"
    test_command = (ROOT / ".ci" / "test").read_text()
    assert "bash .ci/setup-tests" in test_command and "-m pytest" in test_command
    assert test_command.rstrip().endswith('"$@"')  # the arguments given go to pytest
    assert "apt-get" not in (ROOT / ".ci" / "setup").read_text()
    assert "[test]" not in (ROOT / ".ci" / "setup").read_text()
    # the second command is the test command CI runs (the last command of .ci/run)
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert lines[4].split("#")[0].strip() == ci[-1]


def test_every_option_is_in_the_reference() -> None:
    documented = table_names(section("Model options", REFERENCE))
    documented = {name.split(" ")[0] for name in documented}
    missing = [name for name in OPTION_NAMES if name not in documented]
    assert not missing, f"README's Reference > Model options lacks {missing}"


def test_every_server_trait_is_in_the_reference() -> None:
    traits = set(MLWidgetApp.class_traits(config=True)) - set(
        ExtensionApp.class_traits(config=True)
    )
    assert {"store_dir", "config_yaml", "models"} <= traits  # the lookup itself works
    documented = table_names(section("Server configuration (`MLWidgetApp`)", REFERENCE))
    missing = sorted(t for t in traits if f"MLWidgetApp.{t}" not in documented)
    assert not missing, f"README's Reference > Server configuration lacks {missing}"
    assert "MLWIDGET_STORE" in REFERENCE


def test_every_command_option_is_in_the_reference() -> None:
    options = {
        opt
        for action in build_parser()._actions
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help"
    }
    assert {"--port", "--ip", "--token"} <= options
    text = section("`jupyter mlwidget`", REFERENCE)
    missing = sorted(opt for opt in options if f"`{opt}`" not in text)
    assert not missing, f"README's Reference > jupyter mlwidget lacks {missing}"


def test_every_endpoint_query_key_and_action_is_in_the_reference() -> None:
    text = section("REST API", REFERENCE)
    keys = query_keys_in_handlers()
    assert {"_model", "_action", "target_col"} <= keys  # the scan itself works
    keys |= CONTRACT_QUERY_KEYS
    missing = sorted(k for k in keys - set(rest.JUPYTER_KEYS) if not mentions(k, text))
    assert not missing, f"README's Reference > REST API lacks query keys {missing}"
    actions = [a for a in rest.ACTIONS if f"`_action={a}`" not in text]
    assert not actions, f"README's Reference > REST API lacks actions {actions}"
    for item in ("model", "cache"):
        assert f"?delete={item}" in text, item
    for endpoint in ("{base_url}mlhandler/`", "{base_url}mlhandler/{name}`", "{pattern}"):
        assert endpoint in text, endpoint
    for method in ("GET", "POST", "PUT", "DELETE"):
        assert f"**{method}**" in text, method


def test_reference_links_to_the_docs() -> None:
    for doc in ("docs/rest.md", "docs/widgets.md", "docs/core-api.md"):
        assert f"]({doc})" in REFERENCE, doc


@pytest.mark.parametrize(
    "target", sorted(set(re.findall(r"\]\((?!https?://|#)([^)\s]+)\)", README)))
)
def test_relative_links_exist(target: str) -> None:
    assert (ROOT / target.split("#")[0]).exists(), target


def test_curl_examples_send_the_token() -> None:
    """Every curl example authenticates the way Jupyter expects (they are run as printed by
    tests/test_main_command.py)."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    commands = [
        line
        for block in blocks
        for line in block.replace("\\\n", " ").splitlines()
        if line.startswith("curl ")
    ]
    assert commands
    for line in commands:
        words = shlex.split(line)
        assert "Authorization: token $TOKEN" in words, line
