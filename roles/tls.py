"""HTTPS for the site (setting `tls`): where its certificate comes from. nginx's side is
templates/nginx/tls.conf.j2 (Mozilla intermediate) and tls-redirect.conf.j2 (HTTP -> HTTPS 308).

- files: the chain and the key shipped from this machine; the key is a secret file, 0600 root.
- self-signed: made on the host once (the key never leaves it) and kept while server_name is the same.
- acme: Debian's certbot, HTTP-01 through nginx's webroot. The site starts on a self-signed stand-in;
  the "obtain certificate" handler runs after nginx serves the challenge path, then links the site's
  files to certbot's. certbot's timer renews; its deploy hook reloads nginx (acme-reload.sh).
"""

from dataclasses import dataclass
from pathlib import Path

from provisioner.engine.handlers import Handler
from provisioner.remote.quoting import assign, cmd
from provisioner.resources import RUN_DIR, Decision, Directory, File, Packages, Resource, SystemFacts

HERE = Path(__file__).parent
ACME_WEBROOT = "/var/lib/provision/acme"   # tls-redirect.conf.j2 serves the challenges from here
RENEW_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/provision-reload-nginx"


def tls_dir(v) -> str:
    return f"/etc/ssl/provision/{v.app_name}"   # tls.conf.j2 reads the same


def names(v) -> list[str]:
    """The names a certificate is for: server_name's, or localhost for a site that answers any name."""
    return [name for name in v.server_name.split() if name != "_"] or ["localhost"]


def doctor_params(v) -> dict[str, str]:
    """What roles/doctor-front.sh checks the certificate with: its files and the names it must cover."""
    if v.tls == "off":
        return {"CERT": "", "KEY": "", "NAMES": ""}
    return {"CERT": f"{tls_dir(v)}/fullchain.pem", "KEY": f"{tls_dir(v)}/privkey.pem",
            "NAMES": " ".join(name for name in names(v) if "*" not in name)}


def _pem(value) -> str:
    """The PEM text of a setting written as text or naming a file here."""
    return value if str(value).lstrip().startswith("-----BEGIN ") else Path(value).read_text()


def _script(name: str, **params) -> str:
    """One of this folder's shell files, after its parameters."""
    return "\n".join([*(assign(key, value) for key, value in params.items()), (HERE / name).read_text()])


@dataclass
class SelfSignedCertificate(Resource):
    """A certificate the host makes for itself, once; made again only for other names."""

    directory: str
    names: list[str]

    @property
    def cert(self) -> str:
        return f"{self.directory}/fullchain.pem"

    @property
    def key(self) -> str:
        return f"{self.directory}/privkey.pem"

    def label(self) -> str:
        return f"self-signed certificate {self.cert}"

    def probe(self, want_diff: bool = False) -> str:
        return "(\n" + _script("self-signed-names.sh", CERT=self.cert, KEY=self.key) + "\n)"

    def parse(self, out: str) -> list[str]:
        return out.split()

    def decide(self, fact: list[str], system: SystemFacts, want_diff: bool = False) -> Decision:
        if fact == self.names:
            return self.ok(f"made on the host earlier for {' '.join(self.names)}; kept")
        reason = f"made for {' '.join(fact)}, not {' '.join(self.names)}" if fact else "does not exist"
        san = ",".join(f"DNS:{name}" for name in self.names)
        return self.change(reason, _script("self-signed.sh", CERT=self.cert, KEY=self.key, SUBJECT=self.names[0],
                                           SAN=san), backup=(self.cert, self.key))


@dataclass
class AcmeCertificate(Resource):
    """The site's certificate from an ACME server; a change only notifies the handler that gets it."""

    directory: str
    names: list[str]
    server: str

    def label(self) -> str:
        return f"acme certificate {' '.join(self.names)}"

    def probe(self, want_diff: bool = False) -> str:
        return "(\n" + _script("acme-names.sh", CERT_NAME=self.names[0], DIR=self.directory) + "\n)"

    def parse(self, out: str) -> dict:
        lines = [line.partition(" ")[::2] for line in out.splitlines() if line.strip()]
        return {"present": ("present", "") in lines, "server": next((v for k, v in lines if k == "server"), ""),
                "names": [v for k, v in lines if k == "name"]}

    def decide(self, fact: dict, system: SystemFacts, want_diff: bool = False) -> Decision:
        if fact["names"] == self.names and fact["server"] == self.server:
            return self.ok(f"issued by {self.server} for {' '.join(self.names)}; certbot's timer renews it")
        reason = (f"issued for {' '.join(fact['names'])} by {fact['server']}" if fact["names"] else "not issued yet")
        stand_in = "" if fact["present"] else _script(
            "self-signed.sh", CERT=f"{self.directory}/fullchain.pem", KEY=f"{self.directory}/privkey.pem",
            SUBJECT=self.names[0], SAN=",".join(f"DNS:{name}" for name in self.names))
        return self.change(f"{reason}: certbot asks {self.server}", stand_in or ":")


def resources(v):
    if v.tls == "off":
        return
    directory = tls_dir(v)
    packages = ("openssl", "certbot") if v.tls == "acme" else ("openssl",)
    yield Packages(packages, cache_valid_time=v.apt_cache_valid_time, lock_timeout=v.apt_lock_timeout)
    yield Directory(ACME_WEBROOT)
    yield Directory(directory, mode="0700")
    if v.tls == "self-signed":
        yield SelfSignedCertificate(directory, names(v), notify=("reload nginx",))
    elif v.tls == "files":
        yield File(f"{directory}/fullchain.pem", _pem(v.tls_certificate), notify=("reload nginx",))
        yield File(f"{directory}/privkey.pem", _pem(v.tls_key), mode="0600", secret=True, notify=("reload nginx",))
    elif v.tls == "acme":
        yield Directory(str(Path(RENEW_HOOK).parent))
        yield File(RENEW_HOOK, (HERE / "acme-reload.sh").read_text(), mode="0755")
        yield AcmeCertificate(directory, names(v), v.acme_server, notify=("obtain certificate",))


def handlers(v):
    """After "reload nginx" (the roles' order): nginx serves the challenge path before certbot asks."""
    if v.tls != "acme":
        return []
    failed = f"{RUN_DIR}/acme-failed"
    return [Handler("obtain certificate", explain=cmd("cat", failed), run=_script(
        "acme-obtain.sh", CERT_NAME=names(v)[0], NAMES=" ".join(names(v)), SERVER=v.acme_server, EMAIL=v.acme_email,
        WEBROOT=ACME_WEBROOT, DIR=tls_dir(v), FAILED=failed))]
