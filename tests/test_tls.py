"""HTTPS served by `convenio serve` itself, and terminals' client certificates: real servers in
subprocesses, real handshakes, certificates from a test CA (trustme).

Store L001's checkout presents a certificate issued for L001 and a key scoped to L001: it sells. The
same key through L002's certificate is refused (403 STORE_NOT_ALLOWED), and a terminal without a
certificate of the CA never completes the handshake."""

from __future__ import annotations

import datetime
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.auth import apikeys
from gateway.platform.config import Settings
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http.tls import ClientCert, client_cert
from gateway.platform.services import Services
from gateway.stores import stores
from gateway.stores.schemas import StoreCreate
from tests.checkout import Terminal, assert_error
from tests.served import module_settings, serving

CLI = [sys.executable, "-m", "ledger.cli"]
CHECKOUT = frozenset({3183, 3184, 3185, 3186})


@dataclass
class Pki:
    """A test CA, the gateway's certificate from it, and terminal certificates on demand."""

    ca: trustme.CA
    folder: Path
    ca_file: Path
    server_cert: Path
    server_key: Path

    def issue(self, name: str, *uris: str, ca: trustme.CA | None = None) -> Path:
        """A client certificate (and its key, in the same PEM file) with these subjectAltName URIs."""
        issuer = ca or self.ca
        ca_key = serialization.load_pem_private_key(issuer.private_key_pem.bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(issuer.cert_pem.bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if uris:
            names = [x509.UniformResourceIdentifier(u) for u in uris]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        path = self.folder / f"{name.replace(' ', '_')}.pem"
        path.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(folder / "ca.pem")
    server = ca.issue_cert("localhost", "127.0.0.1")
    server.cert_chain_pems[0].write_to_path(folder / "gateway.pem")
    server.private_key_pem.write_to_path(folder / "gateway.key")
    return Pki(ca, folder, folder / "ca.pem", folder / "gateway.pem", folder / "gateway.key")


@pytest.fixture(scope="module")
def settings(redis_url: str, shared_ledger_url: str) -> Settings:
    return module_settings(redis_url, shared_ledger_url, "tls")


@pytest.fixture(scope="module")
def https_port(settings: Settings, pki: Pki) -> Iterator[int]:
    with serving(settings, "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)) as port:
        yield port


@pytest.fixture(scope="module")
def mtls_port(settings: Settings, pki: Pki) -> Iterator[int]:
    flags = ("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--tls-client-ca", str(pki.ca_file))
    with serving(settings, *flags) as port:
        yield port


def client(port: int, pki: Pki, cert: Path | None = None) -> httpx.AsyncClient:
    ctx = ssl.create_default_context(cafile=pki.ca_file)
    if cert is not None:
        ctx.load_cert_chain(cert)
    return httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=ctx, timeout=10)


async def open_store(svc: Services, code: str, *terminals: str) -> None:
    """The store and its terminals, ACTIVE (the module's tests share them)."""
    try:
        await stores.save(svc, code, StoreCreate(code=code, name=f"LOJA {code}"))
    except ApiError as exc:
        assert exc.code == ErrorCode.STORE_EXISTS
    for terminal in terminals:
        await stores.save_terminal(svc, code, terminal, "ACTIVE")


class Checkout(Terminal):
    """A terminal at a store, over its own HTTPS client."""

    def __init__(self, http: httpx.AsyncClient, creds: dict, token: str, store: str, terminal: str) -> None:
        super().__init__(http, {**creds, "api_key": token})
        self.store, self.terminal = store, terminal

    def sale(self, amount: int, proof: str | None, **extra: object) -> dict:
        return super().sale(amount, proof, **{"store": self.store, "terminal": self.terminal, **extra})


@pytest.fixture
async def shops(svc: Services, seed: Terminal) -> dict[str, str]:
    """Stores L001 (PDV01, PDV02) and L002 (PDV01); keys scoped to L001 and to L001's PDV01."""
    await open_store(svc, "L001", "PDV01", "PDV02")
    await open_store(svc, "L002", "PDV01")
    l001, _ = await apikeys.create(svc, CHECKOUT, "PDVs loja 1", store="L001")
    pdv01, _ = await apikeys.create(svc, CHECKOUT, "PDV01 loja 1", store="L001", terminal="PDV01")
    return {"L001": l001, "L001/PDV01": pdv01, "unscoped": seed.creds["api_key"]}


# --- HTTPS without a client CA ----------------------------------------------------------------------
async def test_https_serves_the_terminals_and_plain_http_on_its_port_gets_no_answer(
    https_port: int, pki: Pki, seed: Terminal
) -> None:
    async with client(https_port, pki) as http:
        r = await Terminal(http, seed.creds).limit()
        assert r.status_code == 200, r.text
        assert r.json()["convenio"] == "EMP001"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{https_port}", timeout=5) as plain:
        with pytest.raises(httpx.TransportError):
            await plain.get("/healthz")


async def test_a_client_that_does_not_trust_the_gateways_ca_refuses_it(https_port: int) -> None:
    async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{https_port}", timeout=5) as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.get("/healthz")


# --- with a client CA: the handshake --------------------------------------------------------------------
async def test_without_a_client_certificate_of_the_ca_the_handshake_is_refused(mtls_port: int, pki: Pki) -> None:
    async with client(mtls_port, pki) as http:
        with pytest.raises(httpx.TransportError):
            await http.get("/healthz")
    stranger = pki.issue("stranger L001", "urn:convenio:store:L001", ca=trustme.CA())
    async with client(mtls_port, pki, stranger) as http:
        with pytest.raises(httpx.TransportError):
            await http.get("/healthz")
    async with client(mtls_port, pki, pki.issue("probe")) as http:  # the same request, with a certificate
        assert (await http.get("/healthz")).status_code == 200


# --- with a client CA: the store of the certificate and of the key ---------------------------------------
async def test_store_l001s_key_with_l001s_certificate_reads_the_limit_and_holds(
    mtls_port: int, pki: Pki, seed: Terminal, shops: dict[str, str]
) -> None:
    cert = pki.issue("L001 PDV01", "urn:convenio:store:L001:terminal:PDV01")
    async with client(mtls_port, pki, cert) as http:
        for token in (shops["L001"], shops["L001/PDV01"]):
            pdv = Checkout(http, seed.creds, token, "L001", "PDV01")
            assert (await pdv.limit()).status_code == 200
            r = await pdv.hold(100)
            assert r.status_code == 201, r.text


async def test_store_l001s_key_with_another_stores_certificate_is_refused(
    mtls_port: int, pki: Pki, seed: Terminal, shops: dict[str, str]
) -> None:
    for cert, issued in (
        (pki.issue("L002 PDV01", "urn:convenio:store:L002:terminal:PDV01"), "store L002"),
        (pki.issue("backoffice"), "no store"),
    ):
        async with client(mtls_port, pki, cert) as http:
            pdv = Checkout(http, seed.creds, shops["L001"], "L001", "PDV01")
            error = assert_error(await pdv.limit(), 403, "STORE_NOT_ALLOWED", secrets=(shops["L001"],))
            assert issued in error["message"] and "store L001" in error["message"]


async def test_a_terminals_certificate_holds_a_store_wide_key_to_that_terminal(
    mtls_port: int, pki: Pki, seed: Terminal, shops: dict[str, str]
) -> None:
    cert = pki.issue("L001 PDV01 only", "urn:convenio:store:L001:terminal:PDV01")
    async with client(mtls_port, pki, cert) as http:
        other_pdv = Checkout(http, seed.creds, shops["L001"], "L001", "PDV02")
        assert_error(await other_pdv.hold(100), 403, "STORE_NOT_ALLOWED")
    cert = pki.issue("L001 PDV02", "urn:convenio:store:L001:terminal:PDV02")
    async with client(mtls_port, pki, cert) as http:
        pdv01 = Checkout(http, seed.creds, shops["L001/PDV01"], "L001", "PDV01")
        error = assert_error(await pdv01.limit(), 403, "STORE_NOT_ALLOWED")
        assert "terminal PDV02" in error["message"]


async def test_an_unscoped_key_acts_for_the_store_of_its_certificate_or_any_without_one(
    mtls_port: int, pki: Pki, seed: Terminal, shops: dict[str, str]
) -> None:
    async with client(mtls_port, pki, pki.issue("L001 any PDV", "urn:convenio:store:L001")) as http:
        at_l001 = Checkout(http, seed.creds, shops["unscoped"], "L001", "PDV02")
        assert (await at_l001.limit()).status_code == 200
        assert (await at_l001.hold(100)).status_code == 201
        at_l002 = Checkout(http, seed.creds, shops["unscoped"], "L002", "PDV01")
        assert_error(await at_l002.hold(100), 403, "STORE_NOT_ALLOWED")
    async with client(mtls_port, pki, pki.issue("integration")) as http:
        anywhere = Checkout(http, seed.creds, shops["unscoped"], "LOJA-LIVRE", "CAIXA9")
        r = await anywhere.hold(100)
        assert r.status_code == 201, r.text


# --- reading the certificate ----------------------------------------------------------------------------
def san(*uris: str) -> dict:
    return {"subject": ((("commonName", "x"),),), "subjectAltName": tuple(("URI", u) for u in uris)}


@pytest.mark.parametrize(
    ("peercert", "expected"),
    [
        (san("urn:convenio:store:L001"), ClientCert("L001")),
        (san("urn:convenio:store:L001:terminal:PDV01"), ClientCert("L001", "PDV01")),
        (san("https://example.com", "urn:other:L002"), ClientCert()),
        ({"subject": ((("organizationalUnitName", "L001"),),)}, ClientCert()),  # only the URI names a store
    ],
)
def test_the_store_is_read_from_the_subject_alt_name_uri(peercert: dict, expected: ClientCert) -> None:
    assert client_cert(peercert) == expected


@pytest.mark.parametrize(
    "uris",
    [
        ("urn:convenio:store:L001", "urn:convenio:store:L002"),
        ("urn:convenio:store:L001", "urn:convenio:store:L001:terminal:PDV01"),
        ("urn:convenio:store:",),
        ("urn:convenio:store:L001:terminal:",),
        ("urn:convenio:store:L0 01",),
        ("urn:convenio:store:L001:till:PDV01",),
    ],
)
def test_a_certificate_naming_several_stores_or_a_malformed_one_stands_for_none(uris: tuple[str, ...]) -> None:
    cert = client_cert(san(*uris))
    assert cert.problem and cert.store is None
