"""RFC 9162 Merkle proofs, C2SP signed notes, checkpoints, cosignatures and tile paths, against published vectors."""
import base64
import glob
import json
from pathlib import Path

import pytest

from issuer.keys import PrivateKey
from verifier.results import CeadError
from verifier.tlog import merkle, note, tiles
from verifier.tlog.checkpoint import Checkpoint, open_checkpoint

VECTORS = Path(__file__).parent / "vectors" / "tlog"
REF = json.loads((VECTORS / "reference_tree.json").read_text())
LEAVES = [merkle.leaf_hash(bytes.fromhex(x)) for x in REF["leafInputsHex"]]


def b(s):
    return base64.b64decode(s) if s else b""


def _cases(kind):
    files = sorted(glob.glob(str(VECTORS / "merkle" / kind / "**" / "*.json"), recursive=True))
    assert len(files) > 50
    return [pytest.param(json.loads(Path(f).read_text()), id=f.split(kind + "/")[1]) for f in files]


@pytest.mark.parametrize("v", _cases("inclusion"))
def test_inclusion_vectors(v):
    args = (b(v["leafHash"]), v["leafIdx"], v["treeSize"], [b(p) for p in v["proof"] or []], b(v["root"]))
    if v["wantErr"]:
        with pytest.raises(CeadError) as err:
            merkle.verify_inclusion(*args)
        assert err.value.code == "tlog.proof_invalid"
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("v", _cases("consistency"))
def test_consistency_vectors(v):
    args = (v["size1"], v["size2"], [b(p) for p in v["proof"] or []], b(v["root1"]), b(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(CeadError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_reference_roots_and_proof_generation():
    for size, root in enumerate(REF["rootHashesHexBySize"]):
        assert merkle.root_of(LEAVES[:size]).hex() == root
    # the happy-path proofs of the vectors are the proofs this module generates for the reference tree
    for v in [c.values[0] for c in _cases("inclusion")]:
        if not v["wantErr"] and v["desc"] == "happy path":
            mth = merkle.mth_from_leaves(LEAVES[:v["treeSize"]])
            assert merkle.prove(merkle.inclusion_ranges(v["leafIdx"], v["treeSize"]), mth) == [b(p) for p in v["proof"] or []]
    for v in [c.values[0] for c in _cases("consistency")]:
        if not v["wantErr"] and v["desc"] == "happy path":
            mth = merkle.mth_from_leaves(LEAVES[:v["size2"]])
            assert merkle.prove(merkle.consistency_ranges(v["size1"], v["size2"]), mth) == [b(p) for p in v["proof"] or []]


def test_generated_proofs_verify_for_every_size():
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(70)]
    for n in range(1, 70):
        mth = merkle.mth_from_leaves(leaves[:n])
        root = merkle.root_of(leaves[:n])
        for i in range(n):
            proof = merkle.prove(merkle.inclusion_ranges(i, n), mth)
            merkle.verify_inclusion(leaves[i], i, n, proof, root)
            with pytest.raises(CeadError):
                merkle.verify_inclusion(leaves[(i + 1) % 70], i, n, proof, root)
        for m in range(1, n + 1):
            proof = merkle.prove(merkle.consistency_ranges(m, n), mth)
            merkle.verify_consistency(m, n, proof, merkle.root_of(leaves[:m]), root)
        # complete-subtree decomposition gives the same root as hashing everything
        pieces = merkle.complete_subtrees(0, n)
        assert merkle.fold([merkle.root_of(leaves[i << lv:(i + 1) << lv]) for lv, i in pieces]) == root


def test_signed_note_vector():
    v = json.loads((VECTORS / "signed-note.json").read_text())
    key = note.NoteKey.parse(v["verifierKey"])
    text, verified = note.verify(v["note"], [key])
    assert text == v["text"] and verified[0].key == key
    seed = base64.b64decode(v["signerKey"].split("+", 4)[4])[1:]
    signer = PrivateKey.from_ed25519_seed(seed)
    assert note.signed(v["text"], [note.sign(v["text"], "PeterNeumann", signer)]) == v["note"]
    assert key.vkey() == v["verifierKey"]
    with pytest.raises(CeadError) as err:
        note.verify(v["note"].replace("cryptography", "cryptographY"), [key])
    assert err.value.code == "tlog.signature_invalid"
    for bad in ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "PeterNeumann", "x+y+z"):
        with pytest.raises(CeadError):
            note.NoteKey.parse(bad)


def test_checkpoint_and_cosignature():
    log, witness = PrivateKey.generate(), PrivateKey.generate()
    log_key = note.NoteKey("example.org/log", note.ALG_ED25519, log.public.raw)
    w_key = note.NoteKey("witness.example", note.ALG_COSIGNATURE_V1, witness.public.raw)
    cp = Checkpoint("example.org/log", 8, bytes.fromhex(REF["rootHashesHexBySize"][8]))
    text = cp.text()
    signed = note.signed(text, [note.sign(text, "example.org/log", log)])
    assert open_checkpoint(signed, log_key).checkpoint == cp
    cosigned = signed + note.cosign(text, "witness.example", witness, timestamp=1700000000)
    opened = open_checkpoint(cosigned, log_key, [w_key])
    assert opened.witness_names == ["witness.example"] and opened.witnesses[0].timestamp == 1700000000
    # a cosignature is bound to its checkpoint: moved onto another one, it fails
    other = Checkpoint("example.org/log", 7, bytes.fromhex(REF["rootHashesHexBySize"][7])).text()
    moved = note.signed(other, [note.sign(other, "example.org/log", log), cosigned.splitlines(True)[-1]])
    with pytest.raises(CeadError) as err:
        open_checkpoint(moved, log_key, [w_key])
    assert err.value.code == "tlog.signature_invalid"
    with pytest.raises(CeadError) as err:
        open_checkpoint(signed, note.NoteKey("example.org/log", 1, PrivateKey.generate().public.raw))
    assert err.value.code == "tlog.signature_invalid"
    for bad in ("o\n-1\nAAAA\n", "o\n1\n", "\n1\n" + base64.b64encode(bytes(32)).decode() + "\n"):
        with pytest.raises(CeadError):
            Checkpoint.parse(bad)


def test_tile_paths():
    assert tiles.encode_index(1234067) == "x001/x234/067"
    assert tiles.encode_index(0) == "000"
    assert tiles.tile_path(0, 1234067, 8) == "tile/0/x001/x234/067.p/8"
    assert tiles.entries_path(3) == "tile/entries/003"
    assert tiles.parse_tile_path("tile/1/x001/x234/067.p/8") == (1, 1234067, 8)
    assert tiles.parse_tile_path("tile/entries/000") == ("entries", 0, 256)
    for bad in ("tile/0/1234", "tile/0/x000/001", "tile/0/001.p/256", "tile/0/001.p/0", "tile/../001"):
        with pytest.raises(CeadError):
            tiles.parse_tile_path(bad)
    assert tiles.unbundle(tiles.bundle([b"a", b"", b"xyz"])) == [b"a", b"", b"xyz"]
