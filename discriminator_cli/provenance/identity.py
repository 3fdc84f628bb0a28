"""The signing identity: a certificate chain and its private key, in the form c2pa accepts.

Where it comes from, first match wins:
1. `--sign-cert CHAIN.pem --sign-key KEY.pem` (both, or neither);
2. the config file `$XDG_CONFIG_HOME/discriminator/signing.toml` (`cert = "..."`, `key = "..."`;
   relative paths are relative to the file);
3. a local identity, made once in `$XDG_CONFIG_HOME/discriminator/signing/`.

c2pa refuses a lone self-signed certificate, so the local identity is a CA (`ca.pem`) and a leaf
it signed (`signer.pem` holds leaf + CA, `signer.key` the leaf's key, 0600). The CA's own key is
thrown away once the leaf is signed: nothing else can ever be issued under it. Its clips verify
as valid but untrusted, unless a verifier trusts `ca.pem` (`discriminator verify --trust`).

Every identity is tried once on a tiny built-in PNG before use, so a certificate c2pa would
refuse fails in milliseconds with a one-line error, not after a model has run.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import struct
import tempfile
import tomllib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from discriminator_cli.errors import BadInputError

CONFIG_FILE = "signing.toml"
LOCAL_DIR = "signing"
CA_FILE, CHAIN_FILE, KEY_FILE = "ca.pem", "signer.pem", "signer.key"
LOCAL_ORGANIZATION = "discriminator (local, untrusted)"
LOCAL_VALIDITY = dt.timedelta(days=3650)
# Chain requirements c2pa enforces, for the error message when it refuses a user's chain.
CHAIN_HINT = ("give a leaf certificate issued by a CA (digitalSignature key usage, an EKU such "
              "as emailProtection, key identifiers), followed by its CA certificate(s), and its "
              "unencrypted private key; a lone self-signed certificate is refused")
_FLAGS = {"option": ("--sign-cert", "--sign-key"),
          "config": (f"cert entry of {CONFIG_FILE}", f"key entry of {CONFIG_FILE}")}
_EC_ALGORITHMS = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}


@dataclass(frozen=True)
class SigningIdentity:
    chain_pem: bytes              # leaf first, then its CA certificate(s)
    key_pem: bytes                # PKCS#8, unencrypted (what c2pa reads)
    algorithm: str                # c2pa's name: es256, es384, es512, ps256, ed25519
    source: str                   # "option", "config" or "local"
    cert_path: Path
    key_path: Path
    subject: str                  # the leaf's common name
    issuer: str                   # the issuer's organisation (or common name)
    not_after: dt.datetime

    @property
    def local(self) -> bool:
        return self.source == "local"

    def describe(self) -> str:
        if self.local:
            return f"local identity {self.cert_path.parent} (untrusted)"
        return f"{self.subject} issued by {self.issuer} ({self.cert_path})"

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "subject": self.subject, "issuer": self.issuer,
                "algorithm": self.algorithm, "cert": str(self.cert_path),
                "not_after": self.not_after.isoformat(timespec="seconds"),
                "trusted": False if self.local else None}  # None: up to the verifier's anchors

    def signer(self) -> c2pa.Signer:
        info = c2pa.C2paSignerInfo(self.algorithm.encode(), self.chain_pem, self.key_pem, None)
        return c2pa.Signer.from_info(info)


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "discriminator"


def resolve_identity(cert: Path | None = None, key: Path | None = None, *,
                     config: Path | None = None) -> SigningIdentity:
    """The identity to sign with (see the module docstring for the order)."""
    root = config or config_dir()
    if cert is not None or key is not None:
        if cert is None or key is None:
            raise BadInputError("--sign-cert and --sign-key go together",
                                hint="give both, or neither to use the configured identity")
        return load_identity(cert, key, source="option")
    config_file = root / CONFIG_FILE
    if config_file.is_file():
        cert, key = _read_config(config_file)
        return load_identity(cert, key, source="config")
    return local_identity(root / LOCAL_DIR)


def _read_config(path: Path) -> tuple[Path, Path]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadInputError(f"cannot read the signing config ({exc})", path=path,
                            hint='write cert = "chain.pem" and key = "key.pem"') from exc
    found = []
    for name in ("cert", "key"):
        value = data.get(name)
        if not isinstance(value, str) or not value:
            raise BadInputError(f"key '{name}' is missing or not a path", path=path,
                                hint='write cert = "chain.pem" and key = "key.pem"')
        found.append(path.parent / Path(value).expanduser())
    return found[0], found[1]


def load_identity(cert: Path, key: Path, *, source: str) -> SigningIdentity:
    """A certificate chain (PEM, leaf first) and its private key (PEM), checked with c2pa."""
    flag = _FLAGS.get(source, ("the cert path", "the key path"))
    chain_pem = _read(cert, "signing certificate", flag[0])
    key_pem = _read(key, "signing key", flag[1])
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise BadInputError("not a PEM certificate chain", path=cert,
                            hint=f"give the leaf certificate then its CA, PEM-encoded "
                                 f"({flag[0]})") from exc
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError as exc:
        raise BadInputError("the private key is encrypted", path=key,
                            hint="give an unencrypted key (openssl pkey -in KEY -out "
                                 "plain.pem), readable only by you") from exc
    except ValueError as exc:
        raise BadInputError("not a PEM private key", path=key,
                            hint=f"give the leaf certificate's private key, PEM-encoded "
                                 f"({flag[1]})") from exc
    leaf = certs[0]
    if leaf.public_key().public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.SubjectPublicKeyInfo) != \
            private.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo):
        raise BadInputError("the private key does not belong to the first certificate", path=key,
                            hint=f"the chain must start with this key's certificate ({cert})")
    identity = SigningIdentity(
        chain_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs),
        key_pem=private.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()),
        algorithm=_algorithm(private, key), source=source, cert_path=cert, key_path=key,
        subject=_name(leaf.subject), issuer=_organisation(leaf.issuer),
        not_after=leaf.not_valid_after_utc)
    _try_signing(identity)
    return identity


def _read(path: Path, what: str, flag: str) -> bytes:
    if not path.is_file():
        raise BadInputError(f"{what} not found", path=path, hint=f"check the {flag} path")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"cannot read the {what} ({exc.strerror})", path=path,
                            hint="check its permissions") from exc


def _algorithm(private: Any, key: Path) -> str:
    if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name in _EC_ALGORITHMS:
        return _EC_ALGORITHMS[private.curve.name]
    if isinstance(private, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise BadInputError(f"unsupported key type {type(private).__name__}", path=key,
                        hint="use an EC P-256/P-384/P-521, RSA or Ed25519 key")


def _name(name: x509.Name) -> str:
    found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else name.rfc4514_string()


def _organisation(name: x509.Name) -> str:
    found = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(found[0].value) if found else _name(name)


def _png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


def _try_signing(identity: SigningIdentity) -> None:
    """Sign a 1x1 PNG in memory: c2pa's own checks of the chain and key, in milliseconds."""
    probe = {"claim_generator_info": [{"name": "discriminator"}],
             "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
                 {"action": "c2pa.created", "digitalSourceType":
                  "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCreation"}]}}]}
    try:
        with c2pa.Builder(probe) as builder:
            builder.sign(identity.signer(), "image/png", io.BytesIO(_png_1x1()), io.BytesIO())
    except c2pa.C2paError as exc:
        detail = str(exc).split(":", 1)[-1].strip()
        raise BadInputError(f"c2pa refuses this certificate chain and key ({detail})",
                            path=identity.cert_path, hint=CHAIN_HINT) from exc


def local_identity(folder: Path) -> SigningIdentity:
    """The local identity in `folder`, made on first use (race-free: built aside, renamed)."""
    if not (folder / CHAIN_FILE).is_file():
        _create_local(folder)
    try:
        return load_identity(folder / CHAIN_FILE, folder / KEY_FILE, source="local")
    except BadInputError as exc:
        raise BadInputError(f"the local signing identity is unusable ({exc.message})",
                            path=folder, hint="delete this folder: a new identity is made on "
                                              "the next run") from exc


def _create_local(folder: Path) -> None:
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))  # 0700
    except OSError as exc:
        raise BadInputError(f"cannot make the local signing identity ({exc.strerror})",
                            path=folder, hint="set XDG_CONFIG_HOME to a writable folder, or "
                                              "give --sign-cert/--sign-key") from exc
    try:
        ca_pem, chain_pem, key_pem = _make_local_chain()
        _write(staging / CA_FILE, ca_pem, 0o644)
        _write(staging / CHAIN_FILE, chain_pem, 0o644)
        _write(staging / KEY_FILE, key_pem, 0o600)
        try:
            os.rename(staging, folder)
        except OSError as exc:
            # Another process made it first (rename onto a non-empty folder fails): use theirs.
            if not (folder / CHAIN_FILE).is_file():
                raise BadInputError(f"the local signing folder has no {CHAIN_FILE}",
                                    path=folder, hint="delete this folder: a new identity is "
                                                      "made on the next run") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)  # whatever the umask


def _make_local_chain() -> tuple[bytes, bytes, bytes]:
    """(CA PEM, leaf + CA PEM, leaf key PKCS#8 PEM): the profile c2pa accepts (ES256)."""
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=5), now + LOCAL_VALIDITY  # tolerate clock skew
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "discriminator local CA"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, LOCAL_ORGANIZATION)])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(_key_usage(cert_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "discriminator local signer"),
                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, LOCAL_ORGANIZATION)])
    leaf = (x509.CertificateBuilder().subject_name(leaf_name).issuer_name(ca_name)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    key_pem = leaf_key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    return ca_pem, leaf.public_bytes(serialization.Encoding.PEM) + ca_pem, key_pem


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not cert_sign, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
                         decipher_only=False)

