"""Vector stores, uploaded files and user memory, kept locally in nearnb's SQLite store.

NEAR's hub gave agents OpenAI-style vector stores (upload a file, attach it to
a store, search the store) and a per-user "memory" store built on them. The
hub is gone, so nearnb does the same work in-process: a file's text is cut
into overlapping chunks, each chunk is embedded (:mod:`nearnb.embeddings`),
normalised and stored as float32 next to its text, and a search ranks chunks
by cosine similarity to the embedded query. Plain Python: a store of a few
thousand chunks is searched in milliseconds, and nothing is added to
nearnb's dependencies.

Deliberate differences from NEAR, each because NEAR was wrong or cannot apply:

* files are indexed when they are added, not in a background task, so an
  agent can search right after ``add_file_to_vector_store`` (NEAR answered
  ``in_progress`` and searches missed the file for a while);
* ``full_files`` ranks a file by its *closest* chunk and returns the file's
  own text (NEAR ranked by the farthest chunk and glued the overlapping
  chunks back together, repeating the overlaps);
* a file attached to a store must exist (NEAR stored any id);
* chunk sizes count tokens as 0.75 words: a store's embedder may be remote,
  and nearnb has no tokenizer for it.

Objects are OpenAI's (``VectorStore``, ``VectorStoreFile``, ``FileObject``)
as JSON-able dicts; search results are NEAR's (``{"file_id", "chunk_text",
"distance"}``, distance being the Euclidean distance between unit vectors, as
pgvector's ``<->`` gave NEAR). :class:`VectorStoreError` carries the HTTP
status the hub answers with.
"""

from __future__ import annotations

import json
import operator
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from .embeddings import Embedder, embedder_named
from .providers.base import ProviderError
from .store import Store
from .vectorindex import (
    VectorStoreError,
    checked_expiry,
    checked_metadata,
    chunk_text,
    chunking,
    distance,
    expires_at,
    floats,
    unit,
)

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data")
MEMORY_ROLE = "user_memory:local"  # one local user; NEAR kept one memory store per account
#: NEAR's result counts: 10 chunks, or 1 file with ``full_files``.
CHUNK_RESULTS, FILE_RESULTS = 10, 1


class VectorStores:
    """The vector stores, files and memory in one :class:`~nearnb.store.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------ files

    def upload(self, content: bytes, filename: str, purpose: str = "assistants") -> dict[str, Any]:
        """Keep ``content`` as a file; its OpenAI ``FileObject``."""
        if purpose not in PURPOSES:
            raise VectorStoreError(f"purpose must be one of {', '.join(PURPOSES)}", param="purpose")
        if not isinstance(filename, str) or not filename:
            raise VectorStoreError("file_name must be a non-empty string", param="file_name")
        obj = {
            "id": f"file-{secrets.token_hex(12)}",
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "uploaded",
            "expires_at": None,
            "status_details": None,
        }
        with self.store.write() as db:
            db.execute(
                "INSERT INTO uploaded_files (id, obj, content) VALUES (?, ?, ?)",
                (obj["id"], json.dumps(obj), content),
            )
        return obj

    def get_file(self, file_id: str) -> dict[str, Any] | None:
        rows = self.store.read("SELECT obj FROM uploaded_files WHERE id = ?", (file_id,))
        return json.loads(rows[0][0]) if rows else None

    def file_content(self, file_id: str) -> bytes | None:
        rows = self.store.read("SELECT content FROM uploaded_files WHERE id = ?", (file_id,))
        return bytes(rows[0][0]) if rows else None

    def delete_file(self, file_id: str) -> dict[str, Any]:
        """Delete a file and take it out of every vector store (as NEAR did)."""
        with self.store.write() as db:
            gone = db.execute("DELETE FROM uploaded_files WHERE id = ?", (file_id,)).rowcount
            if not gone:
                raise VectorStoreError(f"file not found: {file_id}", status=404, param="file_id")
            db.execute("DELETE FROM vector_store_files WHERE file_id = ?", (file_id,))
            db.execute("DELETE FROM vector_store_chunks WHERE file_id = ?", (file_id,))
        return {"id": file_id, "object": "file", "deleted": True}

    # ------------------------------------------------------------ stores

    def create(
        self,
        name: str,
        file_ids: Sequence[str] = (),
        *,
        embedder: Embedder,
        chunking_strategy: Any = None,
        expires_after: Any = None,
        metadata: Any = None,
        role: str | None = None,
    ) -> dict[str, Any]:
        """A new store, its files indexed before it is returned; nothing is written if refused."""
        if not isinstance(name, str):
            raise VectorStoreError("name must be a string", param="name")
        strategy = chunking(chunking_strategy)
        files = list(file_ids or ())
        for file_id in files:
            self._require_file(file_id)
        at = int(time.time())
        obj = {
            "name": name,
            "created_at": at,
            "last_active_at": at,
            "embedder": embedder.label,
            "metadata": checked_metadata(metadata),
            "expires_after": checked_expiry(expires_after),
        }
        store_id = f"vs_{secrets.token_hex(12)}"
        with self.store.write() as db:
            db.execute(
                "INSERT INTO vector_stores (id, role, obj) VALUES (?, ?, ?)",
                (store_id, role, json.dumps(obj)),
            )
        for file_id in dict.fromkeys(files):
            self._index(store_id, file_id, embedder, strategy)
        return self.get(store_id)

    def get(self, store_id: str) -> dict[str, Any]:
        """The store as OpenAI's ``VectorStore`` (counts and status as of now)."""
        obj = self._require(store_id)
        files = self.list_files(store_id)
        counts = {
            s: sum(f["status"] == s for f in files)
            for s in ("in_progress", "completed", "failed", "cancelled")
        }
        expires = expires_at(obj)
        expired = expires is not None and time.time() >= expires
        return {
            "id": store_id,
            "object": "vector_store",
            "created_at": obj["created_at"],
            "name": obj["name"],
            "usage_bytes": sum(f["usage_bytes"] for f in files),
            "file_counts": {**counts, "total": len(files)},
            "status": "expired" if expired else "completed",
            "last_active_at": obj["last_active_at"],
            "metadata": obj["metadata"],
            "expires_after": obj["expires_after"],
            "expires_at": expires,
        }

    def list(self) -> list[dict[str, Any]]:
        """Every store, oldest first."""
        rows = self.store.read("SELECT id FROM vector_stores ORDER BY rowid")
        return [self.get(store_id) for (store_id,) in rows]

    def delete(self, store_id: str) -> dict[str, Any]:
        """Delete a store and its index (its files stay, as on OpenAI)."""
        with self.store.write() as db:
            if not db.execute("DELETE FROM vector_stores WHERE id = ?", (store_id,)).rowcount:
                raise VectorStoreError(
                    f"vector store not found: {store_id}", status=404, param="vector_store_id"
                )
            db.execute("DELETE FROM vector_store_files WHERE vector_store_id = ?", (store_id,))
            db.execute("DELETE FROM vector_store_chunks WHERE vector_store_id = ?", (store_id,))
        return {"id": store_id, "object": "vector_store.deleted", "deleted": True}

    # ------------------------------------------------------------ store files

    def add_file(
        self,
        store_id: str,
        file_id: str,
        chunking_strategy: Any = None,
        attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Index a file into a store; its ``VectorStoreFile`` (``failed`` with ``last_error``
        when it could not be embedded, as OpenAI reports it)."""
        obj = self._require(store_id)
        strategy = chunking(chunking_strategy)
        self._require_file(file_id)
        try:
            embedder: Embedder | None = embedder_named(obj["embedder"])
            problem = None
        except ProviderError as exc:
            embedder, problem = None, str(exc)
        return self._index(store_id, file_id, embedder, strategy, problem, attributes)

    def list_files(self, store_id: str) -> list[dict[str, Any]]:
        """A store's ``VectorStoreFile`` objects, oldest first."""
        self._require(store_id)
        rows = self.store.read(
            "SELECT obj FROM vector_store_files WHERE vector_store_id = ? ORDER BY rowid",
            (store_id,),
        )
        return [json.loads(obj) for (obj,) in rows]

    def _index(
        self,
        store_id: str,
        file_id: str,
        embedder: Embedder | None,
        strategy: dict[str, Any],
        problem: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        content = self.file_content(file_id) or b""
        error: dict[str, str] | None = None
        rows: list[tuple[Any, ...]] = []
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
            error = {"code": "unsupported_file", "message": "only UTF-8 text files can be indexed"}
        static = strategy["static"]
        chunks = chunk_text(text, static["max_chunk_size_tokens"], static["chunk_overlap_tokens"])
        if error is None and problem is not None:
            error = {"code": "server_error", "message": problem}
        elif error is None and chunks and embedder is not None:
            try:
                vectors = embedder.embed(chunks)
            except ProviderError as exc:
                error = {"code": "server_error", "message": str(exc)}
            else:
                rows = [
                    (store_id, file_id, i, chunk, unit(v).tobytes())
                    for i, (chunk, v) in enumerate(zip(chunks, vectors, strict=True))
                ]
        at = int(time.time())
        obj = {
            "id": file_id,
            "object": "vector_store.file",
            "created_at": at,
            "vector_store_id": store_id,
            "status": "failed" if error else "completed",
            "usage_bytes": 0 if error else len(content),
            "last_error": error,
            "chunking_strategy": strategy,
            "attributes": attributes or {},
        }
        with self.store.write() as db:
            self._save_index(db, store_id, file_id, obj, rows, at)
        return obj

    @staticmethod
    def _save_index(
        db: sqlite3.Connection,
        store_id: str,
        file_id: str,
        obj: dict[str, Any],
        rows: list[tuple[Any, ...]],
        at: int,
    ) -> None:
        found = db.execute("SELECT obj FROM vector_stores WHERE id = ?", (store_id,)).fetchone()
        if found is None:  # deleted while the file was being embedded
            raise VectorStoreError(
                f"vector store not found: {store_id}", status=404, param="vector_store_id"
            )
        where = (store_id, file_id)
        db.execute(
            "DELETE FROM vector_store_chunks WHERE vector_store_id = ? AND file_id = ?", where
        )
        db.execute(
            "DELETE FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?", where
        )
        db.execute(
            "INSERT INTO vector_store_files (vector_store_id, file_id, obj) VALUES (?, ?, ?)",
            (store_id, file_id, json.dumps(obj)),
        )
        db.executemany(
            "INSERT INTO vector_store_chunks (vector_store_id, file_id, chunk, text, embedding) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        store = {**json.loads(found[0]), "last_active_at": at}
        db.execute("UPDATE vector_stores SET obj = ? WHERE id = ?", (json.dumps(store), store_id))

    # ------------------------------------------------------------------ search

    def ranked(self, store_id: str, queries: Sequence[str]) -> list[tuple[str, int, str, float]]:
        """Every chunk as ``(file_id, chunk, text, cosine)``, best first (best over ``queries``).

        An empty store, or no non-blank query, is an empty result, embedding nothing.
        """
        obj = self._require(store_id)
        queries = [q for q in queries if isinstance(q, str) and q.strip()]
        rows = self.store.read(
            "SELECT file_id, chunk, text, embedding FROM vector_store_chunks "
            "WHERE vector_store_id = ?",
            (store_id,),
        )
        if not rows or not queries:
            return []
        wanted = [unit(v) for v in embedder_named(obj["embedder"]).embed(queries)]
        scored = []
        for file_id, chunk, text, blob in rows:
            vector = floats(blob)
            if any(len(vector) != len(q) for q in wanted):
                raise VectorStoreError(f"vector store {store_id} mixes embedding sizes")
            score = max(sum(map(operator.mul, q, vector)) for q in wanted)
            scored.append((file_id, chunk, text, min(1.0, score)))
        scored.sort(key=lambda item: (-item[3], item[0], item[1]))
        return scored

    def search(
        self, store_id: str, query: str, *, full_files: bool = False
    ) -> list[dict[str, Any]]:
        """NEAR's ``query_vector_store`` answer: the 10 closest chunks, or the closest file."""
        ranked = self.ranked(store_id, [query])
        if not full_files:
            return [
                {"file_id": f, "chunk_text": text, "distance": distance(score)}
                for f, _, text, score in ranked[:CHUNK_RESULTS]
            ]
        out: list[dict[str, Any]] = []
        for file_id, _, _, score in ranked:
            if len(out) == FILE_RESULTS:
                break
            if any(r["file_id"] == file_id for r in out):
                continue
            content = (self.file_content(file_id) or b"").decode("utf-8", "replace")
            filename = (self.get_file(file_id) or {}).get("filename", "")
            out.append(
                {
                    "file_id": file_id,
                    "file_content": content,
                    "distance": distance(score),
                    "filename": filename,
                }
            )
        return out

    # ------------------------------------------------------------------ memory

    def memory_store(self, embedder: Callable[[], Embedder]) -> str:
        """The user's memory store, created on first use (embedded by ``embedder()``, which is
        called only then: a later run may use another provider, the store keeps its own)."""
        rows = self.store.read("SELECT id FROM vector_stores WHERE role = ?", (MEMORY_ROLE,))
        if rows:
            return rows[0][0]
        try:
            return self.create("Memory Store: local", embedder=embedder(), role=MEMORY_ROLE)["id"]
        except sqlite3.IntegrityError:  # another process created it first
            return self.store.read("SELECT id FROM vector_stores WHERE role = ?", (MEMORY_ROLE,))[
                0
            ][0]

    def add_memory(self, memory: str, embedder: Callable[[], Embedder]) -> dict[str, Any]:
        """NEAR's ``add_user_memory``: the memory becomes a file in the memory store."""
        if not isinstance(memory, str):
            raise VectorStoreError("memory must be a string", param="memory")
        store_id = self.memory_store(embedder)
        file_id = self.upload(memory.encode("utf-8"), "memory")["id"]
        self.add_file(store_id, file_id)
        return {"status": "success", "memory_id": file_id, "object": "memory.created"}

    def query_memory(self, query: str, embedder: Callable[[], Embedder]) -> list[dict[str, Any]]:
        return self.search(self.memory_store(embedder), query)

    # ------------------------------------------------------------------ helpers

    def _require(self, store_id: str) -> dict[str, Any]:
        rows = self.store.read("SELECT obj FROM vector_stores WHERE id = ?", (store_id,))
        if not rows:
            raise VectorStoreError(
                f"vector store not found: {store_id}", status=404, param="vector_store_id"
            )
        return json.loads(rows[0][0])

    def _require_file(self, file_id: str) -> None:
        if not isinstance(file_id, str) or self.get_file(file_id) is None:
            raise VectorStoreError(f"file not found: {file_id}", status=404, param="file_id")
