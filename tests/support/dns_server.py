"""A small authoritative DNS server for tests: UDP and TCP on one loopback port.

Built on dnspython's message functions (``dns.message.from_wire`` /
``make_response``) and trio sockets. Zones come as a dict or zone-file text
and can be changed while the server runs::

    zones = Zones({
        "example.test": {"MX": ["10 mx.example.test."], "TXT": [txt("v=spf1 -all")]},
        "mx.example.test": {"A": ["127.0.0.1"]},
    })
    server = DnsServer(zones)
    await nursery.start(server.serve)        # -> the real port
    Resolver([server.address])               # "127.0.0.1:<port>"
    zones.set("example.test", "TXT", txt("part one ", "part two"))   # multi-string

Answers: data (with CNAME chains followed inside our data), NODATA
(NOERROR, no answer, for names that exist or have names below them) and
NXDOMAIN. A UDP answer larger than 512 bytes (or the query's EDNS payload
size) goes out with the TC bit and no records, so the client retries over
TCP. ``servfail`` and ``drop`` sets make names fail or time out.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import trio

RecordData = Mapping[str, Mapping[str, Sequence[str] | str]]
_Node = dict[dns.rdatatype.RdataType, dns.rrset.RRset]

UDP_DEFAULT_PAYLOAD = 512  # RFC 1035 §4.2.1, without EDNS


def txt(*strings: str) -> str:
    """Rdata text of ONE TXT record made of these character-strings (each ≤255 bytes)."""
    out = []
    for s in strings:
        data = s.encode()
        if len(data) > 255:
            raise ValueError("a TXT character-string holds at most 255 bytes; pass several")
        out.append('"' + "".join(_escape(b) for b in data) + '"')
    return " ".join(out)


def _escape(byte: int) -> str:
    if byte in b'"\\':
        return "\\" + chr(byte)
    return chr(byte) if 0x20 <= byte < 0x7F else f"\\{byte:03d}"


def txt_split(value: str, size: int = 255) -> str:
    """Rdata text of one TXT record carrying ``value`` cut into ``size``-byte strings."""
    return txt(*(value[i : i + size] for i in range(0, len(value), size)))


class Zones:
    """Records by owner name and type; mutate at will while a server runs."""

    def __init__(self, records: RecordData | None = None, *, ttl: int = 300) -> None:
        self.ttl = ttl
        self._nodes: dict[dns.name.Name, _Node] = {}
        if records:
            self.update(records)

    @classmethod
    def from_text(cls, text: str, origin: str) -> Zones:
        """Load zone-file text (``$TTL``, SOA and NS are optional)."""
        zone = dns.zone.from_text(text, origin, relativize=False, check_origin=False)
        zones = cls()
        for name, rdataset in zone.iterate_rdatasets():
            rrset = dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset))
            zones._nodes.setdefault(name, {})[rdataset.rdtype] = rrset
        return zones

    def update(self, records: RecordData) -> None:
        for name, by_type in records.items():
            for rdtype, rdatas in by_type.items():
                self.set(name, rdtype, *([rdatas] if isinstance(rdatas, str) else rdatas))

    def set(self, name: str, rdtype: str, *rdatas: str) -> None:
        """Replace the records of one type at ``name`` (none given: delete them)."""
        owner = _name(name)
        kind = dns.rdatatype.from_text(rdtype)
        node = self._nodes.setdefault(owner, {})
        if rdatas:
            node[kind] = dns.rrset.from_text_list(owner, self.ttl, "IN", rdtype, list(rdatas))
        else:
            node.pop(kind, None)
        if not node:
            del self._nodes[owner]

    def add(self, name: str, rdtype: str, *rdatas: str) -> None:
        owner, kind = _name(name), dns.rdatatype.from_text(rdtype)
        existing = self._nodes.get(owner, {}).get(kind)
        texts = [r.to_text() for r in existing] if existing else []
        self.set(name, rdtype, *texts, *rdatas)

    def delete(self, name: str, rdtype: str | None = None) -> None:
        """Remove one type at ``name``, or the whole name (then it is NXDOMAIN)."""
        if rdtype is None:
            self._nodes.pop(_name(name), None)
        else:
            self.set(name, rdtype)

    def lookup(
        self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType
    ) -> tuple[dns.rcode.Rcode, list[dns.rrset.RRset]]:
        answer: list[dns.rrset.RRset] = []
        name = qname
        for _ in range(8):  # CNAME chain limit
            node = self._nodes.get(name)
            if node is None:
                exists = any(other.is_subdomain(name) for other in self._nodes)
                return (dns.rcode.NOERROR if exists else dns.rcode.NXDOMAIN), answer
            if qtype in node:
                return dns.rcode.NOERROR, [*answer, node[qtype]]
            cname = node.get(dns.rdatatype.CNAME)
            if cname is None:
                return dns.rcode.NOERROR, answer
            answer.append(cname)
            name = next(iter(cname)).target
        return dns.rcode.SERVFAIL, answer


@dataclass
class DnsServer:
    zones: Zones = field(default_factory=Zones)
    host: str = "127.0.0.1"
    servfail: set[str] = field(default_factory=set)  # names answered with SERVFAIL
    drop: set[str] = field(default_factory=set)  # names never answered (client times out)
    port: int = 0
    queries: list[tuple[str, str, str]] = field(default_factory=list)  # (transport, name, type)

    @property
    def address(self) -> str:
        """``host:port`` as the resolver configuration takes it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        udp, tcp = await self._bind()
        with udp, tcp:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._serve_udp, udp)
                listener = trio.SocketListener(tcp)
                nursery.start_soon(trio.serve_listeners, self._serve_tcp, [listener])
                task_status.started(self.port)

    async def _bind(self) -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(50):
            udp = trio.socket.socket(family, socket.SOCK_DGRAM)
            await udp.bind((self.host, self.port))
            port = udp.getsockname()[1]
            tcp = trio.socket.socket(family, socket.SOCK_STREAM)
            try:
                await tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                if self.port:
                    raise
                continue
            tcp.listen()
            self.port = port
            return udp, tcp
        raise OSError("could not bind UDP and TCP to one free port")

    async def _serve_udp(self, sock: trio.socket.SocketType) -> None:
        while True:
            data, peer = await sock.recvfrom(65535)
            reply = self.respond(data, "udp")
            if reply is not None:
                try:
                    await sock.sendto(reply, peer)
                except OSError:
                    pass  # the client went away

    async def _serve_tcp(self, stream: trio.SocketStream) -> None:
        buffer = bytearray()
        try:
            async with stream:
                while True:
                    while len(buffer) < 2 or len(buffer) < 2 + int.from_bytes(buffer[:2], "big"):
                        chunk = await stream.receive_some()
                        if not chunk:
                            return
                        buffer += chunk
                    size = int.from_bytes(buffer[:2], "big")
                    data, buffer = bytes(buffer[2 : 2 + size]), buffer[2 + size :]
                    reply = self.respond(data, "tcp")
                    if reply is not None:
                        await stream.send_all(len(reply).to_bytes(2, "big") + reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    def respond(self, wire: bytes, transport: str) -> bytes | None:
        """The reply to one query in wire format, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        qname = question.name.to_text(omit_final_dot=True).lower()
        self.queries.append((transport, qname, dns.rdatatype.to_text(question.rdtype)))
        if qname in self.drop:
            return None
        if qname in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        rcode, answer = self.zones.lookup(question.name, question.rdtype)
        response.set_rcode(rcode)
        response.answer = answer
        if transport == "tcp":
            return response.to_wire()
        limit = max(UDP_DEFAULT_PAYLOAD, query.payload if query.edns >= 0 else 0)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text.rstrip(".").lower() + ".")
