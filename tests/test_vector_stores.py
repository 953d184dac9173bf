"""Vector stores, files and user memory: NEAR's env API on real runs, the embedded model's
embeddings, a provider's ``/v1/embeddings`` (scripted server), and the hub's OpenAI routes.

No golden numbers: the embedded model is checked for shape, repeatability and that a stored
sentence queried verbatim comes back first; the scripted server embeds deterministically."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from nearnb.embeddings import LocalEmbedder, embedder_named
from nearnb.runs import run_agent
from nearnb.store import default_store
from nearnb.vectorindex import VectorStoreError, chunk_text, chunking
from nearnb.vectorstores import VectorStores
from tests.agent_helpers import API_KEY, make_agent, use_scripted_provider
from tests.support.embeddings_server import EmbeddingsServer
from tests.support.hub import running_hub

SENTENCES = {
    "cat.txt": "The cat sat on the mat.",
    "revenue.txt": "Quarterly revenue grew by ten percent.",
    "leaf.txt": "Photosynthesis converts light into chemical energy.",
    "train.txt": "The night train to Vienna leaves from platform nine.",
}
TABLES = ("uploaded_files", "vector_stores", "vector_store_files", "vector_store_chunks")

#: An agent using NEAR's whole vector-store API, reporting what it got as JSON.
KNOWLEDGE_AGENT = """\
import json

a = env.upload_file("The cat sat on the mat.", file_name="cat.txt")
b = env.upload_file("Quarterly revenue grew by ten percent.", file_name="revenue.txt")
store = env.create_vector_store("kb", [a.id, b.id], metadata={"team": "x"})
empty = env.create_vector_store("empty", [])
c = env.upload_file("Photosynthesis converts light into chemical energy.", file_name="leaf.txt")
added = env.add_file_to_vector_store(store.id, c.id)
out = {
    "types": [type(x).__name__ for x in (a, store, added)],
    "none": env.upload_file(""),
    "store": store.model_dump(),
    "got": env.get_vector_store(store.id).model_dump(),
    "files": [f.model_dump() for f in env.get_vector_store_files(store.id)],
    "hits": env.query_vector_store(store.id, "Quarterly revenue grew by ten percent."),
    "full": env.query_vector_store(store.id, "light chemical energy", full_files=True),
    "empty": env.query_vector_store(empty.id, "anything"),
    "memory": env.add_user_memory("I have a black cat named Luna"),
    "recall": env.query_user_memory("black cat named Luna"),
    "ids": [a.id, b.id, c.id],
}
try:
    env.create_vector_store_from_source("repo", {"type": "github", "owner": "o", "repo": "r"})
except ValueError as exc:
    out["refused"] = str(exc)
env.add_reply(json.dumps(out))
"""


@pytest.fixture
def esrv(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddingsServer]:
    """The scripted server with ``/v1/embeddings``, registered as provider ``scripted``."""
    with EmbeddingsServer() as server:
        use_scripted_provider(monkeypatch, server)
        yield server


def report(result: Any) -> dict[str, Any]:
    assert result.status == "completed", result.error
    return json.loads(result.messages[-1].text)


def rows() -> dict[str, int]:
    store = default_store()
    return {t: store.read(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}


# ------------------------------------------------------------ env, provider embeddings


@pytest.mark.usefixtures("database_url")  # on each store backend
def test_nears_vector_store_api_on_a_provider_run(esrv: EmbeddingsServer, tmp_path: Path) -> None:
    result = run_agent(make_agent(tmp_path / "kb", KNOWLEDGE_AGENT), "go")
    out = report(result)
    a, b, c = out["ids"]
    assert out["types"] == ["FileObject", "VectorStore", "VectorStoreFile"]
    assert out["none"] is None  # NEAR uploaded nothing for empty content
    assert out["store"]["file_counts"] == {
        "in_progress": 0, "completed": 2, "failed": 0, "cancelled": 0, "total": 2
    }  # fmt: skip
    assert (out["store"]["status"], out["store"]["metadata"]) == ("completed", {"team": "x"})
    assert out["got"]["file_counts"]["total"] == 3 and out["got"]["usage_bytes"] > 0
    assert [(f["id"], f["status"]) for f in out["files"]] == [(x, "completed") for x in (a, b, c)]

    hits = out["hits"]
    assert all(set(hit) == {"file_id", "chunk_text", "distance"} for hit in hits)
    assert (hits[0]["file_id"], hits[0]["chunk_text"]) == (b, SENTENCES["revenue.txt"])
    assert hits[0]["distance"] < 1e-3 and len(hits) == 3
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    assert out["full"] == [
        {"file_id": c, "file_content": SENTENCES["leaf.txt"],
         "distance": out["full"][0]["distance"], "filename": "leaf.txt"}
    ]  # fmt: skip
    assert out["empty"] == []

    memory = json.loads(out["memory"])  # NEAR's client handed agents the JSON text
    assert memory["status"] == "success" and memory["object"] == "memory.created"
    recall = json.loads(out["recall"])
    assert recall[0] == {"file_id": memory["memory_id"],
                         "chunk_text": "I have a black cat named Luna",
                         "distance": recall[0]["distance"]}  # fmt: skip
    assert "create_vector_store_from_source is not supported by nearnb" in out["refused"]

    # embedded by the run's provider, with its key, under its chat model (no embedding model set)
    assert esrv.embedding_requests and all(
        r["model"] == "test-model" for r in esrv.embedding_requests
    )
    assert {h["authorization"] for h in esrv.embedding_headers} == {f"Bearer {API_KEY}"}
    assert API_KEY not in json.dumps(out)


def test_the_providers_embedding_model_is_configurable(
    esrv: EmbeddingsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEARNB_PROVIDER_SCRIPTED_EMBEDDING_MODEL", "embed-small")
    code = "s = env.create_vector_store('kb', [env.upload_file('hello world').id])\n"
    assert run_agent(make_agent(tmp_path / "m", code), "go").status == "completed"
    assert {r["model"] for r in esrv.embedding_requests} == {"embed-small"}
    assert embedder_named("scripted::embed-small").label == "scripted::embed-small"


@pytest.mark.usefixtures("database_url")  # on each store backend
def test_a_failing_embeddings_endpoint_marks_the_file_failed(
    esrv: EmbeddingsServer, tmp_path: Path
) -> None:
    esrv.fail_embeddings = 500
    code = (
        "import json\n"
        "s = env.create_vector_store('kb', [env.upload_file('hello world').id])\n"
        "f = env.get_vector_store_files(s.id)[0]\n"
        "env.add_reply(json.dumps({'store': s.model_dump(), 'file': f.model_dump(),\n"
        "                          'hits': env.query_vector_store(s.id, 'hello')}))\n"
    )
    out = report(run_agent(make_agent(tmp_path / "down", code), "go"))
    assert out["store"]["file_counts"]["failed"] == 1
    assert out["file"]["status"] == "failed"
    assert out["file"]["last_error"]["code"] == "server_error"
    assert "HTTP 500" in out["file"]["last_error"]["message"]
    assert API_KEY not in json.dumps(out)
    assert out["hits"] == []  # nothing was indexed, and an empty store embeds no query


@pytest.mark.usefixtures("database_url")  # on each store backend
def test_bytes_upload_and_a_file_that_is_not_text(esrv: EmbeddingsServer, tmp_path: Path) -> None:
    code = (
        "import json\n"
        "f = env.upload_file(b'\\xff\\xfe\\x00binary', file_name='blob.bin')\n"
        "s = env.create_vector_store('kb', [f.id])\n"
        "v = env.get_vector_store_files(s.id)[0]\n"
        "env.add_reply(json.dumps({'bytes': f.bytes, 'error': v.last_error.model_dump()}))\n"
    )
    out = report(run_agent(make_agent(tmp_path / "blob", code), "go"))
    assert out["bytes"] == 9
    assert out["error"]["code"] == "unsupported_file"
    assert esrv.embedding_requests == []


@pytest.mark.usefixtures("database_url")  # on each store backend
def test_unknown_ids_are_refused_clearly(esrv: EmbeddingsServer, tmp_path: Path) -> None:
    code = (
        "out = []\n"
        "for call in (lambda: env.query_vector_store('vs_missing', 'q'),\n"
        "             lambda: env.get_vector_store('vs_missing'),\n"
        "             lambda: env.create_vector_store('kb', ['file-missing'])):\n"
        "    try:\n"
        "        call()\n"
        "    except ValueError as exc:\n"
        "        out.append(str(exc))\n"
        "env.add_reply('|'.join(out))\n"
    )
    result = run_agent(make_agent(tmp_path / "missing", code), "go")
    assert result.messages[-1].text.split("|") == [
        "vector store not found: vs_missing",
        "vector store not found: vs_missing",
        "file not found: file-missing",
    ]
    assert rows()["vector_stores"] == 0  # the refused create wrote nothing


# ------------------------------------------------------------------ the pure rules


def test_chunks_overlap_and_cover_the_text() -> None:
    words = [f"w{i}" for i in range(1000)]
    chunks = chunk_text(" ".join(words), 100, 40)  # 75 words, stepping 45
    assert chunks[0].split() == words[:75] and chunks[1].split()[0] == "w45"
    assert chunks[-1].split()[-1] == "w999"
    assert chunk_text("", 800, 400) == [] and chunk_text("one", 800, 400) == ["one"]


@pytest.mark.parametrize(
    "strategy",
    [
        {"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
        {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 101}},
        {"type": "static"},
        {"type": "other"},
        "auto",
    ],
)
def test_chunking_strategies_follow_openais_rules(strategy: Any) -> None:
    with pytest.raises(VectorStoreError, match="chunk"):
        chunking(strategy)
    assert chunking(None) == chunking({"type": "auto"})
    assert chunking(None)["static"] == {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}


# ----------------------------------------------------------------- the embedded model


@pytest.mark.local_model
def test_local_embeddings_have_a_shape_and_repeat() -> None:
    embedder = LocalEmbedder()
    assert embedder.label == "local::smollm2"
    texts = list(SENTENCES.values())
    first = embedder.embed(texts)
    assert len(first) == len(texts) and {len(v) for v in first} == {576}
    assert all(math.isfinite(x) for v in first for x in v)
    assert all(any(x != 0 for x in v) for v in first)
    assert embedder.embed(texts) == first
    assert embedder.embed([]) == []


LOCAL_AGENT = """\
import json

ids = {name: env.upload_file(text, file_name=name).id for name, text in SENTENCES.items()}
store = env.create_vector_store("kb", list(ids.values()))
firsts = {name: env.query_vector_store(store.id, text)[0]["file_id"] == ids[name]
          for name, text in SENTENCES.items()}
env.add_user_memory("My favourite colour is green.")
recall = json.loads(env.query_user_memory("My favourite colour is green."))
empty = env.create_vector_store("e", [])
env.add_reply(json.dumps({"firsts": firsts, "recall": recall[0]["chunk_text"],
                          "empty": env.query_vector_store(empty.id, "q")}))
"""


@pytest.mark.local_model
def test_a_stored_sentence_ranks_first_on_the_embedded_model(tmp_path: Path) -> None:
    code = f"SENTENCES = {SENTENCES!r}\n{LOCAL_AGENT}"
    agent = make_agent(
        tmp_path / "local-kb", code, defaults={"model": "", "model_provider": "local"}
    )
    out = report(run_agent(agent, "go"))
    assert out["firsts"] == dict.fromkeys(SENTENCES, True)
    assert out["recall"] == "My favourite colour is green."
    assert out["empty"] == []
    store = VectorStores(default_store())
    assert {embedder_label(store, s["id"]) for s in store.list()} == {"local::smollm2"}


def embedder_label(stores: VectorStores, store_id: str) -> str:
    (obj,) = stores.store.read("SELECT obj FROM vector_stores WHERE id = ?", (store_id,))[0]
    return json.loads(obj)["embedder"]


# ----------------------------------------------------------------------- the hub


@pytest.fixture
def hub(
    esrv: EmbeddingsServer, monkeypatch: pytest.MonkeyPatch, database_url: str | None
) -> Iterator[Any]:
    """A hub whose default provider is the scripted one (its default model names the embedder),
    on each store backend (``database_url``)."""
    monkeypatch.setenv("NEARNB_PROVIDER_SCRIPTED_MODEL", "test-model")
    with running_hub() as server:
        yield server


def upload(*names: str) -> list[str]:
    stores = VectorStores(default_store())
    return [stores.upload(SENTENCES[n].encode(), n)["id"] for n in names]


def test_openai_python_drives_the_hubs_vector_store_routes(hub: Any) -> None:
    cat, revenue, leaf = upload("cat.txt", "revenue.txt", "leaf.txt")
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key="unused", max_retries=0)
    created = client.vector_stores.create(name="kb", file_ids=[cat, revenue])
    assert created.file_counts.completed == 2 and created.status == "completed"
    added = client.vector_stores.files.create(created.id, file_id=leaf, attributes={"k": "v"})
    assert (added.id, added.status, added.object) == (leaf, "completed", "vector_store.file")
    files = client.vector_stores.files.list(created.id, order="asc")
    assert [f.id for f in files.data] == [cat, revenue, leaf]

    page = client.vector_stores.search(created.id, query=SENTENCES["leaf.txt"], max_num_results=2)
    assert len(page.data) == 2
    best = page.data[0]
    assert (best.file_id, best.filename, best.attributes) == (leaf, "leaf.txt", {"k": "v"})
    assert best.content[0].text == SENTENCES["leaf.txt"] and 0.99 <= best.score <= 1.0

    assert client.vector_stores.retrieve(created.id).file_counts.total == 3
    assert [s.id for s in client.vector_stores.list().data] == [created.id]
    assert client.vector_stores.delete(created.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(created.id)
    assert rows()["vector_store_chunks"] == 0


def test_the_hub_searches_a_store_an_agent_made(hub: Any, tmp_path: Path) -> None:
    result = run_agent(make_agent(tmp_path / "kb", KNOWLEDGE_AGENT), "go")
    store_id = report(result)["store"]["id"]
    body = {"query": SENTENCES["cat.txt"], "ranking_options": {"score_threshold": 0.99}}
    page = httpx.post(f"{hub.url}/v1/vector_stores/{store_id}/search", json=body).json()
    assert [d["content"][0]["text"] for d in page["data"]] == [SENTENCES["cat.txt"]]
    assert page["object"] == "vector_store.search_results.page"


def test_hub_lists_page_with_cursors(hub: Any) -> None:
    ids = [
        httpx.post(f"{hub.url}/v1/vector_stores", json={"name": f"s{i}"}).json()["id"]
        for i in range(3)
    ]
    page = httpx.get(f"{hub.url}/v1/vector_stores", params={"limit": 2}).json()
    assert [s["id"] for s in page["data"]] == ids[::-1][:2] and page["has_more"] is True
    rest = httpx.get(f"{hub.url}/v1/vector_stores", params={"after": page["last_id"]}).json()
    assert [s["id"] for s in rest["data"]] == [ids[0]] and rest["has_more"] is False
    empty = httpx.post(f"{hub.url}/v1/vector_stores/{ids[0]}/search", json={"query": "x"}).json()
    assert empty["data"] == []


BAD_REQUESTS = [
    ("POST", "/vector_stores", {"file_ids": [123]}, 422),
    ("POST", "/vector_stores", {"file_ids": ["file-missing"]}, 404),
    ("POST", "/vector_stores", {"expires_after": {"anchor": "last_active_at", "days": 0}}, 422),
    ("POST", "/vector_stores", {"metadata": {str(i): "v" for i in range(17)}}, 422),
    ("POST", "/vector_stores", {"name": "x" * 257}, 422),
    (
        "POST",
        "/vector_stores",
        {
            "chunking_strategy": {
                "type": "static",
                "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150},
            }
        },
        422,
    ),  # fmt: skip
    ("POST", "/vector_stores", b"{not json", 422),
    ("POST", "/vector_stores", [1, 2], 422),
    ("POST", "/vector_stores/{vs}/files", {}, 422),
    ("POST", "/vector_stores/{vs}/files", {"file_id": "file-missing"}, 404),
    ("POST", "/vector_stores/vs_missing/files", {"file_id": "{file}"}, 404),
    ("POST", "/vector_stores/{vs}/files", {"file_id": "{file}", "attributes": {"k": [1]}}, 422),
    ("POST", "/vector_stores/{vs}/search", {"query": ""}, 422),
    ("POST", "/vector_stores/{vs}/search", {"query": "q", "max_num_results": 0}, 422),
    ("POST", "/vector_stores/{vs}/search", {"query": "q", "filters": {"type": "eq"}}, 422),
    ("POST", "/vector_stores/vs_missing/search", {"query": "q"}, 404),
    ("GET", "/vector_stores/vs_missing", None, 404),
    ("DELETE", "/vector_stores/vs_missing", None, 404),
    ("GET", "/vector_stores?limit=0", None, 422),
    ("GET", "/vector_stores?order=sideways", None, 422),
    ("GET", "/vector_stores?after=vs_missing", None, 422),
    ("GET", "/vector_stores/{vs}/files?filter=bogus", None, 422),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), BAD_REQUESTS)
def test_the_hub_refuses_bad_requests_and_writes_nothing(
    hub: Any, method: str, path: str, body: Any, status: int
) -> None:
    (file_id,) = upload("cat.txt")
    store_id = httpx.post(f"{hub.url}/v1/vector_stores", json={"name": "kb"}).json()["id"]
    before = rows()
    path = path.replace("{vs}", store_id)
    if isinstance(body, dict):
        body = json.loads(json.dumps(body).replace("{file}", file_id))
    content = body if isinstance(body, bytes) else None if body is None else json.dumps(body)
    response = httpx.request(method, f"{hub.url}/v1{path}", content=content)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert rows() == before


def test_files_by_id_and_files_attached_to_the_thread(srv: Any, tmp_path: Path) -> None:
    """NEAR's read_file_by_id / list_files_from_thread over uploaded files; no embedding."""
    code = (
        "import json\n"
        "f = env.upload_file('notes for later', file_name='notes.txt')\n"
        "env.add_reply('see attached', attachments=[f.id])\n"
        "listed = env.list_files_from_thread()\n"
        "try:\n"
        "    env.read_file_by_id('file_missing')\n"
        "    missing = None\n"
        "except ValueError as exc:\n"
        "    missing = str(exc)\n"
        "env.add_reply(json.dumps({'text': env.read_file_by_id(f.id),\n"
        "    'raw': env.read_file_by_id(f.id, decode=None).decode(),\n"
        "    'listed': [(x.id, x.filename) for x in listed], 'id': f.id, 'missing': missing}))\n"
    )
    result = run_agent(make_agent(tmp_path / "files", code), "go")
    assert result.status == "completed", result.traceback
    out = json.loads(result.messages[-1].text)
    assert out["text"] == out["raw"] == "notes for later"
    assert out["listed"] == [[out["id"], "notes.txt"]]
    assert out["missing"] == "file not found: file_missing"
