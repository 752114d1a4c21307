"""A throwaway Postfix + OpenDKIM instance for the comparison benchmark (Debian packages).

``postfix_relay(directory, sink_port, key_pem)`` writes a config directory
and a queue directory under ``directory`` (never touching /etc/postfix),
starts OpenDKIM as a signing milter (RSA-2048, relaxed/relaxed, domain
``sender.test`` selector ``bench``) and ``postfix -c <dir> start`` listening
on a free 127.0.0.1 port, relaying everything to ``[127.0.0.1]:sink_port``.
On exit Postfix is stopped (``postfix -c <dir> stop``, then ``abort`` if it
lingers) and OpenDKIM is terminated. Postfix's own defaults are kept
(20 connections per destination, connection cache on demand); chroot is off.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from tests.bench.sink import free_port

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
DKIM_DOMAIN = "sender.test"
DKIM_SELECTOR = "bench"

# Debian's master.cf services that a relay needs, without chroot.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
syslog_name = postfix-bench
myhostname = postfix-bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink_port}
smtp_host_lookup = native
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtpd_milters = inet:127.0.0.1:{milter_port}
non_smtpd_milters = $smtpd_milters
milter_default_action = tempfail
"""

OPENDKIM_CONF = """\
Syslog no
Mode s
Domain {domain}
Selector {selector}
KeyFile {root}/dkim/{selector}.private
Socket inet:{milter_port}@127.0.0.1
Canonicalization relaxed/relaxed
SignatureAlgorithm rsa-sha256
PidFile {root}/opendkim.pid
InternalHosts 127.0.0.1
RequireSafeKeys no
"""


@dataclass(frozen=True, slots=True)
class PostfixRelay:
    port: int
    config_dir: Path
    maillog: Path


def _postfix(config_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [POSTFIX, "-c", str(config_dir), *args], capture_output=True, text=True, timeout=60
    )


async def _wait_listening(port: int, what: str, process: trio.Process | None = None) -> None:
    with trio.fail_after(20):
        while True:
            if process is not None and process.returncode is not None:
                raise RuntimeError(f"{what} exited with status {process.returncode}")
            try:
                await (await trio.open_tcp_stream("127.0.0.1", port)).aclose()
                return
            except OSError:
                await trio.sleep(0.05)


def _write_instance(directory: Path, sink_port: int, key_pem: bytes) -> tuple[Path, int, int]:
    """The config, queue, data and key directories; returns (root, smtpd port, milter port)."""
    root = directory.resolve()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    for sub in ("etc", "spool", "data", "dkim"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for path in (root, *root.parents):
        if not path.stat().st_mode & 0o001:
            raise RuntimeError(
                f"{path} is not searchable by other users: the postfix user could not reach "
                f"its queue under {root}. Make it so (chmod o+x) or choose another directory."
            )
    shutil.chown(root / "data", "postfix", "postfix")
    port, milter_port = free_port(), free_port()
    fields = {
        "root": root,
        "port": port,
        "sink_port": sink_port,
        "milter_port": milter_port,
        "domain": DKIM_DOMAIN,
        "selector": DKIM_SELECTOR,
    }
    (root / "etc" / "main.cf").write_text(MAIN_CF.format(**fields))
    (root / "etc" / "master.cf").write_text(MASTER_CF.format(**fields))
    key = root / "dkim" / f"{DKIM_SELECTOR}.private"
    key.write_bytes(key_pem)
    key.chmod(0o600)
    (root / "opendkim.conf").write_text(OPENDKIM_CONF.format(**fields))
    return root, port, milter_port


@asynccontextmanager
async def postfix_relay(
    directory: Path, sink_port: int, key_pem: bytes
) -> AsyncIterator[PostfixRelay]:
    root, port, milter_port = _write_instance(directory, sink_port, key_pem)
    opendkim_log = (root / "opendkim.log").open("wb")
    opendkim = await trio.lowlevel.open_process(
        [OPENDKIM, "-f", "-x", str(root / "opendkim.conf")],
        stdout=opendkim_log,
        stderr=subprocess.STDOUT,
    )
    config_dir = root / "etc"
    try:
        await _wait_listening(milter_port, "opendkim", opendkim)
        started = _postfix(config_dir, "start")
        if started.returncode != 0:
            raise RuntimeError(
                f"postfix -c {config_dir} start failed: {started.stdout}{started.stderr}; "
                f"see {root / 'maillog'}"
            )
        await _wait_listening(port, "postfix smtpd")
        yield PostfixRelay(port, config_dir, root / "maillog")
    finally:
        with trio.CancelScope(shield=True):
            if _postfix(config_dir, "stop").returncode != 0:
                _postfix(config_dir, "abort")
            opendkim.terminate()
            await opendkim.wait()
            opendkim_log.close()
