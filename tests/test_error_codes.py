"""Every error code the code can raise is named in docs/ (docs/error-codes.md says where), so a gateway operator
or a script author can look up any code they see."""
import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "verifier", "issuer", "wallet", "cead")
CODE = re.compile(r"^[a-z]+\.[a-z][a-z_]*$")
# calls whose first string arguments may be a problem code (this finds codes of any new family) ...
RAISERS = {"CeadError", "Problem", "_fail", "_problem", "_error", "Violation", "TransferDenied"}
# ... and any string of a known family, wherever it stands (codes chosen in a table or a conditional)
FAMILIES = {"approval", "auth", "certification", "credential", "decision", "delegation", "did", "encoding",
            "attestation", "computation",
            "holder", "http", "inbox", "input", "jose", "jsonld", "key", "manifest", "node", "options", "pex",
            "policy", "presentation", "gateway", "proof", "protocol", "provenance", "qr", "rdfc", "receipt", "request",
            "schema", "scope", "serve", "server", "status", "token", "transfer", "verifier", "wallet", "web"}


# strings of those families that are not codes (module and file names)
NOT_CODES = {"verifier.cli", "wallet.cli", "issuer.cli", "server.pem", "key.pem"}


def raised_codes() -> dict[str, str]:
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                strings = []
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in RAISERS:
                    strings = node.args[:2]
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                        and node.value.split(".")[0] in FAMILIES:
                    strings = [node]
                for arg in strings:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and CODE.match(arg.value) \
                            and arg.value not in NOT_CODES:
                        found.setdefault(arg.value, f"{path.relative_to(ROOT)}:{arg.lineno}")
    return found


def test_the_scan_finds_codes():
    codes = raised_codes()
    assert {"proof.signature_invalid", "did.unreachable", "status.revoked", "transfer.column_not_approved",
            "key.locked"} <= set(codes)


def test_every_raised_code_is_documented():
    docs = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    missing = {code: where for code, where in raised_codes().items() if f"`{code}`" not in docs
               and not re.search(rf"(?<![\w.]){re.escape(code)}(?![\w])", docs)}
    assert not missing, f"codes raised but not named in docs/: {missing}"
