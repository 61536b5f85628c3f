"""A throwaway OpenLDAP ``slapd`` (Debian: slapd, ldap-utils) on a loopback port, for LDAP tests.

The database (mdb) and the configuration (``slapd.conf``) live in a temporary folder and are
loaded offline with ``slapadd`` before the server starts, so no system LDAP setup is touched.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

SUFFIX = "dc=example,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "root-secret"
ADMINS_DN = f"cn=admins,ou=groups,{SUFFIX}"
SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
MODULES = next((p for p in ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap") if Path(p).exists()),
               "/usr/lib/ldap")


def available() -> str | None:
    """None if slapd can run here, else the reason to skip."""
    if not Path(SLAPD).exists() or not Path(SLAPADD).exists():
        return "slapd not installed (Debian: apt-get install -y slapd ldap-utils)"
    if not Path("/etc/ldap/schema/inetorgperson.schema").exists():
        return "OpenLDAP schema files missing (/etc/ldap/schema)"
    return None


def person(uid: str, mail: str, password: str, name: str) -> str:
    return (f"dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {name}\n"
            f"sn: {name.split()[-1]}\ndisplayName: {name}\nmail: {mail}\nuserPassword: {password}\n\n")


BASE_LDIF = (f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
             f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n"
             f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n")


class Slapd:
    def __init__(self, folder: Path, entries: str = "", admins: list[str] | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "db").mkdir(exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.conf = folder / "slapd.conf"
        self.conf.write_text(
            "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n"
            "include /etc/ldap/schema/inetorgperson.schema\n"
            f"modulepath {MODULES}\nmoduleload back_mdb\npidfile {folder}/slapd.pid\n"
            f"database mdb\nmaxsize 16777216\nsuffix \"{SUFFIX}\"\nrootdn \"{ROOT_DN}\"\nrootpw {ROOT_PW}\n"
            f"directory {folder}/db\n"
            "access to attrs=userPassword by self write by anonymous auth by * none\n"
            "access to * by * read\n")
        ldif = BASE_LDIF + entries
        if admins is not None:
            members = "".join(f"member: {dn}\n" for dn in admins) or f"member: {ROOT_DN}\n"
            ldif += f"dn: {ADMINS_DN}\nobjectClass: groupOfNames\ncn: admins\n{members}\n"
        (folder / "data.ldif").write_text(ldif)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Slapd:
        subprocess.run([SLAPADD, "-f", str(self.conf), "-l", str(self.folder / "data.ldif")], check=True,
                       capture_output=True, timeout=30)
        self.log = open(self.folder / "slapd.log", "wb")  # noqa: SIM115 - open while slapd runs
        # -d 0: stay in the foreground (no fork), so the test owns the process
        self.proc = subprocess.Popen([SLAPD, "-d", "0", "-h", self.url + "/", "-f", str(self.conf)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited: {(self.folder / 'slapd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.3):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("slapd did not listen")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def settings(self, **extra: str) -> dict[str, str]:
        """The ``[ldap]`` section for a tau config pointing here."""
        values = {"url": self.url, "bind_dn": ROOT_DN, "bind_password": ROOT_PW,
                  "base_dn": f"ou=people,{SUFFIX}", "user_filter": "(mail={user})", "admin_group": ADMINS_DN}
        values.update(extra)
        return values
