"""Which key goes to which server: the engine token to the daemon's own engines only, a plugin provider's
key to its own endpoints, nothing real to anyone else."""

from __future__ import annotations

from tests.unit.providers.conftest import ServerFactory, SpeechFactory
from tests.unit.providers.test_failover import speak


async def test_each_local_endpoint_gets_only_its_own_key(server: ServerFactory, speech: SpeechFactory) -> None:
    piper, acme, other = await server(), await server(), await server()
    sp = await speech(
        engine_token="engine-secret",
        engines=frozenset({"piper"}),
        endpoint_keys={("tts", "acme"): "acme-key"},
        local={"tts": {"piper": piper.url, "acme": acme.url, "other": other.url}},
    )
    for name in ("piper", "acme", "other"):
        await speak(sp, provider=name)

    def bearer(srv: object) -> str:
        posts = srv.posts()  # type: ignore[attr-defined]
        assert posts, "the endpoint was asked"
        return str(posts[-1].headers.get("authorization", ""))

    assert bearer(piper) == "Bearer engine-secret"
    assert bearer(acme) == "Bearer acme-key"
    # A local endpoint that is not one of the engines (a plugin's server may be anywhere) never sees
    # the engine token.
    assert "engine-secret" not in bearer(other) and "acme-key" not in bearer(other)
