"""Agent data, vector stores and user memory, kept locally (part of the ``env`` object).

NEAR's ``Environment`` forwarded these calls to its hub; nearnb answers them
from the run's own SQLite store (:mod:`nearnb.agentdata`,
:mod:`nearnb.vectorstores`), with NEAR's signatures and return shapes:

* agent data: the hub's ``AgentData`` rows as dicts; a save NEAR's hub would
  refuse logs the error to the system log and returns None, as NEAR did;
* vector stores and files: openai-python's ``VectorStore``,
  ``VectorStoreFile``, ``FileObject`` and ``FileDeleted`` objects;
  ``query_vector_store`` returns NEAR's list of dicts;
* user memory: NEAR's client asked for these answers ``cast_to=str``, so
  agents received the JSON *text*; they still do.

New stores are embedded like the run's completions: with the embedded model
when the run uses it, otherwise through the provider's ``/v1/embeddings``.
These writes go straight to the store rather than through the run's event
log: they are not part of the thread's conversation, and agent data and
vector stores outlive the thread.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from . import agentdata
from .embeddings import Embedder, embedder_for
from .env_base import EnvBase
from .vectorindex import VectorStoreError
from .vectorstores import VectorStores

if TYPE_CHECKING:
    from openai.types import FileDeleted, FileObject, VectorStore
    from openai.types.vector_stores import VectorStoreFile


def _openai_types() -> Any:
    """openai's types, imported after :func:`~nearnb.providers.sdk.sdk` (which sets the order)."""
    from .providers.sdk import sdk

    types = sdk().openai.types
    from openai.types.vector_stores import VectorStoreFile

    return SimpleNamespace(
        FileObject=types.FileObject,
        FileDeleted=types.FileDeleted,
        VectorStore=types.VectorStore,
        VectorStoreFile=VectorStoreFile,
    )


class DataMixin(EnvBase):
    """Agent data, vector stores and user memory, kept locally."""

    # --------------------------------------------------------------- agent data

    def _agent_data_owner(self) -> tuple[str, str]:
        """(namespace, name): NEAR keyed agent data by agent, without its version."""
        return agentdata.agent_key(self._agent.identifier)

    def save_agent_data(self, key: Any, data: Any) -> dict[str, Any] | None:
        """Save ``data`` (a JSON object) under ``key`` for this agent; the stored row.

        Refused values (not a dict, not JSON, over NEAR's 10 KB) are reported in
        the system log and answered with None, as NEAR did.
        """
        try:
            return agentdata.save(self._ports.store, *self._agent_data_owner(), key, data)
        except agentdata.AgentDataError as exc:
            self._log_error(f"Error saving agent data by key {key}: {exc}")
            return None

    def get_agent_data(self) -> list[dict[str, Any]]:
        """Every row this agent saved (across its runs, threads and versions)."""
        return agentdata.get_all(self._ports.store, *self._agent_data_owner())

    def get_agent_data_by_key(self, key: Any, default: Any = None) -> dict[str, Any]:
        """The row for ``key``; if never saved, NEAR's stand-in with ``value = default``."""
        namespace, name = self._agent_data_owner()
        found = agentdata.get(self._ports.store, namespace, name, str(key))
        return found or agentdata.missing(namespace, name, key, default)

    def _log_error(self, text: str) -> None:
        add_system_log = getattr(self, "add_system_log", None)
        if add_system_log is not None:
            add_system_log(text, logging.ERROR)

    # ------------------------------------------------------------------- files

    @property
    def _vector_stores(self) -> VectorStores:
        return VectorStores(self._ports.store)

    def _embedder(self) -> Embedder:
        """The embedder that goes with the run's default completions provider."""
        return embedder_for(self._ports.choice.resolve(""))

    def upload_file(
        self,
        file_content: str | bytes,
        purpose: str = "assistants",
        encoding: str | None = "utf-8",
        file_name: str | None = "file.txt",
        file_type: str | None = "text/plain",
    ) -> FileObject | None:
        """Keep a file for vector stores; None for empty content, as NEAR. Bytes are kept as
        they are (NEAR's signature said ``str``, but agents passed file bytes too)."""
        if not file_content:
            return None
        if isinstance(file_content, bytes):
            raw = file_content
        else:
            raw = file_content.encode(encoding or "utf-8")
        obj = self._vector_stores.upload(raw, file_name or "file.txt", purpose)
        return _openai_types().FileObject.model_validate(obj)

    def read_file_by_id(self, file_id: str, decode: str | None = "utf-8") -> str | bytes:
        """An uploaded file's content (NEAR read it from its hub's files API)."""
        content = self._vector_stores.file_content(file_id)
        if content is None:
            raise ValueError(f"file not found: {file_id}")
        return content.decode(decode) if decode else content

    def list_files_from_thread(
        self, order: str = "asc", thread_id: str | None = None
    ) -> list[FileObject]:
        """The uploaded files attached to the thread's messages, in message order."""
        self._ports.sync()
        messages = self._ports.store.list_messages(
            thread_id or self.thread_id, order="desc" if order == "desc" else "asc"
        )
        ids = [a.file_id for m in messages for a in m.attachments or () if a.file_id]
        files = [self._vector_stores.get_file(file_id) for file_id in ids]
        return [_openai_types().FileObject.model_validate(f) for f in files if f is not None]

    def remove_file(self, file_id: str) -> FileDeleted:
        """Delete an uploaded file; it leaves every vector store too."""
        return _openai_types().FileDeleted.model_validate(self._vector_stores.delete_file(file_id))

    # ----------------------------------------------------------- vector stores

    def create_vector_store(
        self,
        name: str,
        file_ids: list[str],
        expires_after: Any = None,
        chunking_strategy: Any = None,
        metadata: dict[str, str] | None = None,
    ) -> VectorStore:
        """A vector store of ``file_ids``, indexed before it is returned."""
        obj = self._vector_stores.create(
            name,
            file_ids,
            embedder=self._embedder(),
            chunking_strategy=chunking_strategy,
            expires_after=expires_after,
            metadata=metadata,
        )
        return _openai_types().VectorStore.model_validate(obj)

    def get_vector_store(self, vector_store_id: str) -> VectorStore:
        return _openai_types().VectorStore.model_validate(self._vector_stores.get(vector_store_id))

    def get_vector_store_files(self, vector_store_id: str) -> list[VectorStoreFile] | None:
        file_type = _openai_types().VectorStoreFile
        files = self._vector_stores.list_files(vector_store_id)
        return [file_type.model_validate(f) for f in files]

    def add_file_to_vector_store(self, vector_store_id: str, file_id: str) -> VectorStoreFile:
        """Index an uploaded file into the store (``status`` says whether it worked)."""
        obj = self._vector_stores.add_file(vector_store_id, file_id)
        return _openai_types().VectorStoreFile.model_validate(obj)

    def query_vector_store(
        self, vector_store_id: str, query: str, full_files: bool = False
    ) -> list[dict[str, Any]]:
        """NEAR's search: ``[{file_id, chunk_text, distance}]`` for the 10 closest chunks, or
        with ``full_files`` ``[{file_id, file_content, distance, filename}]`` for the closest
        file; an empty store gives ``[]``."""
        return self._vector_stores.search(vector_store_id, query, full_files=full_files)

    def create_vector_store_from_source(
        self,
        name: str,
        source: Any,
        source_auth: str | None = None,
        chunking_strategy: Any = None,
        expires_after: Any = None,
        metadata: dict[str, str] | None = None,
    ) -> VectorStore:
        """Refused: NEAR's hub cloned the repository; nearnb fetches nothing from the network."""
        kind = getattr(source, "type", None) or (
            source.get("type") if isinstance(source, dict) else None
        )
        raise VectorStoreError(
            "create_vector_store_from_source is not supported by nearnb: it imported a "
            f"{kind or 'remote'} repository through the NEAR AI hub, which is shut down, and "
            "nearnb does not fetch from the network. Upload the files with env.upload_file() "
            "and pass their ids to env.create_vector_store() instead.",
            param="source",
        )

    # ------------------------------------------------------------------ memory

    def add_user_memory(self, memory: str) -> str:
        """Remember ``memory``; NEAR's answer as JSON text
        (``{"status": "success", "memory_id": ..., "object": "memory.created"}``)."""
        return _json_text(self._vector_stores.add_memory(memory, self._embedder))

    def query_user_memory(self, query: str) -> str:
        """The memories closest to ``query`` as JSON text of NEAR's search results."""
        return _json_text(self._vector_stores.query_memory(query, self._embedder))


def _json_text(obj: Any) -> str:
    """JSON as NEAR's hub sent it (FastAPI: compact, non-ASCII kept)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
