"""HTTPS for the site (setting `tls`): where its certificate comes from. nginx's side is
templates/nginx/tls.conf.j2 (Mozilla intermediate) and tls-redirect.conf.j2 (HTTP -> HTTPS 308).

- files: the chain and the key shipped from this machine; the key is a secret file, 0600 root.
- self-signed: made on the host once (the key never leaves it) and kept while server_name is the same.
- acme: Debian's certbot, HTTP-01 through nginx's webroot. The site starts on a self-signed stand-in;
  the "obtain certificate" handler runs after nginx serves the challenge path, then links the site's
  files to certbot's. certbot's timer renews; its deploy hook reloads nginx (acme-reload.sh).
OCSP stapling only for a certificate that names a responder (tls-stapling.sh): decided here from the
file for `files`, never for self-signed, and on the host whenever certbot gets a certificate.
"""

from dataclasses import dataclass, replace
from pathlib import Path

from provisioner import templating
from provisioner.engine.handlers import Handler
from provisioner.errors import UserError
from provisioner.remote.quoting import assign, cmd
from provisioner.resources import RUN_DIR, Decision, Directory, File, Resource, SystemFacts, Template

from .base import packages

HERE = Path(__file__).parent
ACME_WEBROOT = "/var/lib/provision/acme"   # tls-redirect.conf.j2 serves the challenges from here
RENEW_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/provision-reload-nginx"
# nginx from here (Debian 13's 1.26): `http2 on;` (`listen ... http2` warns "deprecated"), and session ticket
# keys rotated in the shared cache (since 1.23.2), so Mozilla keeps tickets on
MODERN_NGINX = (1, 25, 1)


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


def ocsp_responder(pem: str, where: str = "tls_certificate") -> str:
    """The OCSP responder URL the (first) certificate of a PEM chain names; "" when it names none."""
    from cryptography import x509  # here: only a site with its own certificate pays for it (~0.02 s)
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise UserError(f"{where} is not a PEM certificate", "give the chain as PEM text or a .pem file") from None
    try:
        access = certificate.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    except x509.ExtensionNotFound:
        return ""
    return next((d.access_location.value for d in access if d.access_method == AuthorityInformationAccessOID.OCSP), "")


def _stapling_params(v, responder: str = "-") -> dict[str, str]:
    return {"CERT": f"{tls_dir(v)}/fullchain.pem", "RESPONDER": responder, "STAPLING": f"{tls_dir(v)}/stapling.conf"}


def _script(name: str, **params) -> str:
    """One of this folder's shell files, after its parameters."""
    return "\n".join([*(assign(key, value) for key, value in params.items()), (HERE / name).read_text()])


@dataclass
class NginxSiteFile(File):
    """The site's config for nginx before 1.25.1 and for later ones; the host's nginx version picks.
    Before, only `listen ... http2` exists (Debian 12's 1.22 refuses `http2 on;`) and session tickets
    are off (their key never rotates); from 1.25.1 (Debian 13's 1.26) the listen flag warns that it is
    deprecated, and tickets stay on."""

    content_modern: str = ""

    def decide(self, fact: dict, system: SystemFacts, want_diff: bool = False) -> Decision:
        if system is not None and system.nginx_version >= MODERN_NGINX:
            return File.decide(replace(self, content=self.content_modern), fact, system, want_diff)
        return super().decide(fact, system, want_diff)


class NginxSiteTemplate(Template):
    """site.conf.j2 rendered twice when the stack is declared (`modern_nginx` false, then true)."""

    def __init__(self, path: str, template: str, context: dict, **options):
        super().__init__(path, template, context, kind=NginxSiteFile, **options)

    def rendered(self, templates: Path) -> File:
        older, modern = (templating.render(self.template, {**self.context, "modern_nginx": on}, templates)
                         for on in (False, True))
        return NginxSiteFile(self.path, older, content_modern=modern, **self.options)


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


@dataclass
class OcspStapling(Resource):
    """stapling.conf beside the certificate (tls.conf.j2 includes it): stapling on only when the
    certificate names an OCSP responder; `responder` "-" asks the host's certificate (acme)."""

    params: dict[str, str]

    def label(self) -> str:
        return f"ocsp stapling {self.params['STAPLING']}"

    def probe(self, want_diff: bool = False) -> str:
        return "(\n" + _script("tls-stapling.sh", **self.params) + \
            '\nstapling_conf | cmp -s - "$STAPLING" && echo current || echo outdated\n)'

    def parse(self, out: str) -> str:
        return out.strip()

    def decide(self, fact: str, system: SystemFacts, want_diff: bool = False) -> Decision:
        responder = self.params["RESPONDER"]
        what = ("for the responder the certificate names" if responder == "-" else
                f"for the responder {responder}" if responder else "none: the certificate names no OCSP responder")
        if fact == "current":
            return self.ok(f"stapling {what}")
        return self.change(f"{'out of date' if fact == 'outdated' else 'unknown'}; stapling {what}",
                           _script("tls-stapling.sh", **self.params) + "\nwrite_stapling_conf",
                           backup=(self.params["STAPLING"],))


def resources(v):
    if v.tls == "off":
        return
    directory = tls_dir(v)
    yield packages(v, "openssl", "ca-certificates", *(("certbot",) if v.tls == "acme" else ()))  # roots: stapling
    yield Directory(ACME_WEBROOT)
    yield Directory(directory, mode="0700")
    responder = ""   # self-signed: never one
    if v.tls == "self-signed":
        yield SelfSignedCertificate(directory, names(v), notify=("reload nginx",))
    elif v.tls == "files":
        chain = _pem(v.tls_certificate)
        responder = ocsp_responder(chain, f"tls_certificate of {v.app_name}")
        yield File(f"{directory}/fullchain.pem", chain, notify=("reload nginx",))
        yield File(f"{directory}/privkey.pem", _pem(v.tls_key), mode="0600", secret=True, notify=("reload nginx",))
    elif v.tls == "acme":
        responder = "-"   # whatever certbot gets: the handler and the renewal hook write it again
        shebang, reload = (HERE / "acme-reload.sh").read_text().split("\n", 1)
        yield Directory(str(Path(RENEW_HOOK).parent))
        yield File(RENEW_HOOK, f"{shebang}\n{_script('tls-stapling.sh', **_stapling_params(v))}\n{reload}", mode="0755")
        yield AcmeCertificate(directory, names(v), v.acme_server, notify=("obtain certificate",))
    yield OcspStapling(_stapling_params(v, responder), notify=("reload nginx",))


def handlers(v):
    """After "reload nginx" (the roles' order): nginx serves the challenge path before certbot asks."""
    if v.tls != "acme":
        return []
    failed = f"{RUN_DIR}/acme-failed"
    return [Handler("obtain certificate", explain=cmd("cat", failed), run=_script(
        "tls-stapling.sh", **_stapling_params(v)) + "\n" + _script(
        "acme-obtain.sh", CERT_NAME=names(v)[0], NAMES=" ".join(names(v)), SERVER=v.acme_server, EMAIL=v.acme_email,
        WEBROOT=ACME_WEBROOT, DIR=tls_dir(v), FAILED=failed))]
