"""Signed provenance: every lipsync clip carries a C2PA manifest, and `discriminator verify`
checks it (signature, hard binding, sidecar and input hashes).

One tiny clip (the astronaut photo, a 1 s narration, generated weights, LBP detector) is made
once per module and copied by the tests that damage it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest

c2pa = pytest.importorskip("c2pa")
pytestmark = pytest.mark.provenance

from discriminator_cli.cache import file_sha256  # noqa: E402
from discriminator_cli.errors import BadInputError, ToolFailedError  # noqa: E402
from discriminator_cli.provenance.identity import (  # noqa: E402
    CHAIN_FILE,
    KEY_FILE,
    LOCAL_DIR,
    SigningIdentity,
    load_identity,
    resolve_identity,
)
from discriminator_cli.provenance.manifest import DIGITAL_SOURCE_TYPE  # noqa: E402
from discriminator_cli.provenance.verify import verify_clip  # noqa: E402
from tests.helpers import ffprobe_json  # noqa: E402

# tests/wav2lip_weights.py needs numpy; this module must collect without the lipsync extra.
DATA = Path(__file__).parent / "data" / "wav2lip"
C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "discriminator_cli", *args],
                          capture_output=True, text=True, check=False, env=os.environ.copy())


def make_chain(folder: Path, name: str, *, self_signed: bool = False) -> tuple[Path, Path]:
    """A user's own CA + leaf (chain.pem, key.pem in SEC1 form), or a lone self-signed cert."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def cert(subject: str, key, issuer: str, issuer_key, ca: bool):  # type: ignore[no-untyped-def]
        now = dt.datetime.now(dt.UTC)
        usage = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment",
                               "key_agreement", "encipher_only", "decipher_only"), False)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(hours=1))
                   .not_valid_after(now + dt.timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca,
                                                crl_sign=ca, **usage), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False))
        if not ca:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    folder.mkdir(parents=True, exist_ok=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    if self_signed:  # as `openssl req -x509` makes one: its own CA
        pems = [cert(name, leaf_key, name, leaf_key, True)]
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        pems = [cert(name, leaf_key, f"{name} CA", ca_key, False),
                cert(f"{name} CA", ca_key, f"{name} CA", ca_key, True)]
    chain, key = folder / "chain.pem", folder / "key.pem"
    chain.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pems))
    key.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    key.chmod(0o600)
    return chain, key


# ---- the signing identity (no torch needed) ---------------------------------------------------

def test_local_identity_is_made_once_and_reused(tmp_path: Path) -> None:
    first = resolve_identity(config=tmp_path)
    folder = tmp_path / LOCAL_DIR
    assert first.local and first.source == "local" and "untrusted" in first.describe()
    assert (folder.stat().st_mode & 0o777) == 0o700
    assert (folder / KEY_FILE).stat().st_mode & 0o777 == 0o600
    stamps = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    second = resolve_identity(config=tmp_path)
    assert second.chain_pem == first.chain_pem and second.key_pem == first.key_pem
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()} == stamps
    assert sorted(stamps) == sorted(["ca.pem", CHAIN_FILE, KEY_FILE])  # no CA key is kept


def test_user_and_config_identities(tmp_path: Path) -> None:
    chain, key = make_chain(tmp_path / "newsroom", "Newsroom signer")
    given = resolve_identity(chain, key, config=tmp_path)
    assert given.source == "option" and given.subject == "Newsroom signer"
    assert given.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # SEC1 made PKCS#8
    (tmp_path / "signing.toml").write_text('cert = "newsroom/chain.pem"\n'
                                           'key = "newsroom/key.pem"\n')
    configured = resolve_identity(config=tmp_path)
    assert configured.source == "config" and configured.subject == "Newsroom signer"
    assert not (tmp_path / LOCAL_DIR).exists()


@pytest.mark.parametrize("case", ["missing cert", "missing key", "cert alone", "not pem",
                                  "wrong key", "self-signed"])
def test_bad_identity_is_one_line(case: str, tmp_path: Path) -> None:
    chain, key = make_chain(tmp_path / "good", "Good signer")
    other_chain, other_key = make_chain(tmp_path / "other", "Other signer")
    expected = {"missing cert": "signing certificate not found",
                "missing key": "signing key not found",
                "cert alone": "--sign-cert and --sign-key go together",
                "not pem": "not a PEM certificate chain",
                "wrong key": "does not belong to the first certificate",
                "self-signed": "c2pa refuses this certificate chain"}[case]
    cert_arg: Path | None = chain
    key_arg: Path | None = key
    if case == "missing cert":
        cert_arg = tmp_path / "nope.pem"
    elif case == "missing key":
        key_arg = tmp_path / "nope.key"
    elif case == "cert alone":
        key_arg = None
    elif case == "not pem":
        cert_arg = tmp_path / "notes.pem"
        cert_arg.write_text("hello\n")
    elif case == "wrong key":
        key_arg = other_key
    else:
        cert_arg, key_arg = make_chain(tmp_path / "lone", "Lone", self_signed=True)
    with pytest.raises(BadInputError) as caught:
        resolve_identity(cert_arg, key_arg, config=tmp_path)
    line = caught.value.one_line()
    assert expected in line and "\n" not in line and " — " in line
    del other_chain


def test_unwritable_config_dir_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder\n")
    with pytest.raises(BadInputError, match="cannot make the local signing identity") as caught:
        resolve_identity(config=tmp_path / "file" / "discriminator")
    assert "--sign-cert/--sign-key" in caught.value.one_line()


# ---- clips (the lipsync extra) ----------------------------------------------------------------

@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A signed clip from a real pipeline run, with its inputs."""
    pytest.importorskip("torch")
    from PIL import Image
    from skimage import data

    from discriminator_cli.lipsync.engine import load_engine
    from discriminator_cli.lipsync.faces import LbpDetector
    from discriminator_cli.lipsync.pipeline import lipsync_clip
    from tests.wav2lip_weights import write_checkpoint

    folder = tmp_path_factory.mktemp("provenance")
    Image.fromarray(data.astronaut()).save(folder / "astronaut.png")
    with wave.open(str(DATA / "speech_3s_16k.wav"), "rb") as source, \
            wave.open(str(folder / "narration.wav"), "wb") as cut:
        cut.setparams(source.getparams())
        cut.writeframes(source.readframes(source.getframerate()))  # 1 s: 22 frames
    with wave.open(str(DATA / "speech_3s_16k.wav"), "rb") as source, \
            wave.open(str(folder / "short.wav"), "wb") as cut:
        cut.setparams(source.getparams())
        cut.writeframes(source.readframes(source.getframerate() // 4))  # for the extra clips
    write_checkpoint(folder / "wav2lip.pth")
    engine = load_engine(folder / "wav2lip.pth")  # bf16 where the CPU has it: faster
    lipsync_clip(engine, folder / "astronaut.png", folder / "narration.wav",
                 folder / "clip.mp4", LbpDetector())
    return {"folder": folder, "clip": folder / "clip.mp4", "engine": engine}  # type: ignore[dict-item]


def _copy_clip(made: dict[str, Path], tmp_path: Path) -> Path:
    clip = tmp_path / "clip.mp4"
    shutil.copy(made["clip"], clip)
    shutil.copy(made["folder"] / "clip.mp4.json", tmp_path / "clip.mp4.json")
    return clip


@pytest.mark.lipsync
def test_signed_clip_verifies(made: dict[str, Path]) -> None:
    folder, clip = made["folder"], made["clip"]
    report = verify_clip(clip)
    statuses = {c.name: c.status for c in report.checks}
    assert report.ok and not report.trusted, report.as_dict()
    assert statuses == {"manifest": "ok", "signature": "ok", "hard binding": "ok",
                        "trust": "warning", "clip sha256": "ok", "sidecar": "ok",
                        "face": "ok", "narration": "ok", "checkpoint": "ok"}
    summary = report.summary
    assert summary is not None and summary.synthetic
    assert summary.digital_source_type == DIGITAL_SOURCE_TYPE
    assert summary.generator.startswith("discriminator ")
    assert summary.model is not None
    assert summary.model.precision == made["engine"].precision  # type: ignore[attr-defined]
    assert summary.model.checkpoint_sha256 == file_sha256(folder / "wav2lip.pth")
    assert {(i.role, i.title, i.sha256) for i in summary.inputs} == {
        ("face", "astronaut.png", file_sha256(folder / "astronaut.png")),
        ("narration", "narration.wav", file_sha256(folder / "narration.wav"))}
    assert summary.signer["issuer"] == "discriminator (local, untrusted)"
    sidecar = json.loads((folder / "clip.mp4.json").read_text())
    assert sidecar["output"]["sha256"] == file_sha256(clip)  # the signed file's
    assert sidecar["c2pa"]["c2pa_manifest"] == summary.label
    assert sidecar["c2pa"]["identity"]["source"] == "local"
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no leftovers

    anchors = Path(os.environ["XDG_CONFIG_HOME"]) / "discriminator" / LOCAL_DIR / "ca.pem"
    trusted = verify_clip(clip, trust_anchors=anchors)
    assert trusted.ok and trusted.trusted
    assert {c.name: c.status for c in trusted.checks}["trust"] == "ok"


@pytest.mark.lipsync
def test_cli_verify_prints_what_the_clip_is(made: dict[str, Path]) -> None:
    result = run_cli("verify", str(made["clip"]))
    assert result.returncode == 0, result.stderr
    assert "ok — synthetic (compositeWithTrainedAlgorithmicMedia)" in result.stdout
    precision = made["engine"].precision  # type: ignore[attr-defined]
    assert f"Wav2Lip, {precision} on cpu, checkpoint wav2lip.pth" in result.stdout
    assert "face astronaut.png" in result.stdout and "narration narration.wav" in result.stdout
    assert "untrusted" in result.stdout and result.stderr == ""
    as_json = run_cli("verify", str(made["clip"]), "--json")
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and report["ok"] is True
    assert report["clips"][0]["manifest"]["synthetic"] is True


@pytest.mark.lipsync
def test_one_flipped_video_byte_fails(made: dict[str, Path], tmp_path: Path) -> None:
    clip = _copy_clip(made, tmp_path)
    packet = ffprobe_json(clip, "-show_packets", "-select_streams", "v:0")["packets"][5]
    offset = int(packet["pos"]) + int(packet["size"]) // 2
    data = bytearray(clip.read_bytes())
    data[offset] ^= 0x01
    clip.write_bytes(bytes(data))
    report = verify_clip(clip)
    failed = {c.name for c in report.failures()}
    assert not report.ok and failed == {"hard binding", "clip sha256"}, report.as_dict()
    result = run_cli("verify", str(clip))
    assert result.returncode == 1 and "FAILED" in result.stdout
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors)
    assert "changed after it was signed" in result.stderr and "Traceback" not in result.stderr


def _strip_manifest(clip: Path) -> None:
    """Turn the top-level C2PA uuid box into a `free` box: offsets stay, the manifest goes."""
    data = bytearray(clip.read_bytes())
    offset = 0
    while offset < len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        if data[offset + 4:offset + 8] == b"uuid" and data[offset + 8:offset + 24] == C2PA_UUID:
            data[offset + 4:offset + 8] = b"free"
            clip.write_bytes(bytes(data))
            return
        offset += size
    raise AssertionError("no C2PA uuid box")


@pytest.mark.lipsync
def test_stripped_manifest_is_reported(made: dict[str, Path], tmp_path: Path) -> None:
    clip = _copy_clip(made, tmp_path)
    _strip_manifest(clip)
    assert ffprobe_json(clip, "-show_streams")["streams"]  # still a playable MP4
    result = run_cli("verify", str(clip))
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip().splitlines() == [
        f"error: {clip}: manifest: no C2PA manifest: it was stripped, or the clip was never "
        "signed; its provenance cannot be shown"]
    missing = run_cli("verify", str(tmp_path / "nothing.mp4"))
    assert missing.returncode == 2 and "clip not found" in missing.stderr


@pytest.mark.lipsync
def test_ffprobe_reads_the_signed_clip(made: dict[str, Path]) -> None:
    probe = ffprobe_json(made["clip"], "-show_streams", "-show_format", "-count_frames")
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    frames = json.loads(made["clip"].with_name("clip.mp4.json").read_text())["output"]["frames"]
    assert video["codec_name"] == "h264" and int(video["nb_read_frames"]) == frames == 22
    assert any(s["codec_type"] == "audio" for s in probe["streams"])
    assert abs(float(probe["format"]["duration"]) - 1.0) < 0.1


@pytest.mark.lipsync
@pytest.mark.browser
def test_signed_clip_plays_in_chromium(made: dict[str, Path], tmp_path: Path) -> None:
    from discriminator_cli.preview.players import find_chromium, find_node, find_node_modules

    chromium, node, modules = find_chromium(), find_node(), find_node_modules()
    if chromium is None or node is None or modules is None:
        pytest.skip("needs chromium (apt-get install chromium), node and `npm ci`")
    shutil.copy(made["clip"], tmp_path / "clip.mp4")
    (tmp_path / "play.html").write_text('<!doctype html><video src="clip.mp4" muted autoplay '
                                        'playsinline></video>\n')
    job = {"page": (tmp_path / "play.html").as_uri(), "chromium": chromium,
           "nodeModules": str(modules), "playSeconds": 0.6, "timeoutMs": 20000}
    run = subprocess.run([node, str(Path(__file__).with_name("play_clip.mjs")), json.dumps(job)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["played"], seen
    assert (seen["state"]["videoWidth"], seen["state"]["videoHeight"]) == (512, 512)


@pytest.mark.lipsync
def test_user_identity_signs_and_nothing_unsigned_is_published(made: dict[str, Path],
                                                               tmp_path: Path) -> None:
    from discriminator_cli.lipsync.faces import LbpDetector
    from discriminator_cli.lipsync.pipeline import LipSyncOptions, lipsync_clip

    folder, engine = made["folder"], made["engine"]
    face, narration = folder / "astronaut.png", folder / "short.wav"
    chain, key = make_chain(tmp_path / "newsroom", "Newsroom signer")
    mine = load_identity(chain, key, source="option")
    out = tmp_path / "clips" / "mine.mp4"
    lipsync_clip(engine, face, narration, out, LbpDetector(),  # type: ignore[arg-type]
                 LipSyncOptions(signing=mine))
    report = verify_clip(out, search=[folder])
    assert report.ok and report.summary is not None, report.as_dict()
    assert report.summary.signer["common_name"] == "Newsroom signer"
    assert json.loads(out.with_name("mine.mp4.json").read_text())["c2pa"]["identity"][
        "source"] == "option"

    # The CLI refuses a bad --sign-key in one line, before the model loads.
    bad = run_cli("lipsync", "--face", str(face), "--audio", str(narration), "--checkpoint",
                  str(folder / "wav2lip.pth"), "-o", str(tmp_path / "cli.mp4"), "--sign-cert",
                  str(chain), "--sign-key", str(tmp_path / "missing.key"))
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1 and "model:" not in bad.stderr
    assert lines[0] == (f"error: {tmp_path / 'missing.key'}: signing key not found — check the "
                        "--sign-key path")

    # An identity c2pa cannot sign with, past every early check: the clip is made, signing
    # fails, and nothing is published.
    other = resolve_identity(config=tmp_path / "elsewhere")
    broken = SigningIdentity(**{**mine.__dict__, "key_pem": other.key_pem})
    with pytest.raises(ToolFailedError, match="c2pa could not sign the clip"):
        lipsync_clip(engine, face, narration, tmp_path / "refused.mp4",  # type: ignore[arg-type]
                     LbpDetector(), LipSyncOptions(signing=broken))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clips", "elsewhere", "newsroom"]
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == ["mine.mp4",
                                                                     "mine.mp4.json"]


def test_verify_without_the_extra_is_explained(tmp_path: Path) -> None:
    clip = tmp_path / "c.mp4"
    clip.write_bytes(b"\0" * 16)
    code = ("import sys; sys.modules['c2pa'] = None\n"
            "from discriminator_cli.cli.app import main\n"
            f"main(['verify', {str(clip)!r}])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 3, result.stderr
    assert "needs the provenance extra" in result.stderr and "pip install" in result.stderr
