"""``gwh fetch hsc-sql`` and ``gwh fetch hsc-cutouts``: the HSC-SSP archive clients wired to a
warehouse (its cache folder, its ``[archives]`` URL, its tables).

* :func:`fetch_hsc_sql` runs a catalog job with :func:`loaders.hsc_ssp.sql_cache.run_sql` (results
  cached under ``ROOT/cache/hsc_sql`` by the SHA-256 of the SQL, release and format), copies the
  result to ``out`` and optionally loads it (``hsc-forced`` or ``hsc-specz``).
* :func:`fetch_hsc_cutouts` asks the DAS cutout service for every object of a view in batch
  lists of at most 1000 rows, one band each, and ingests the tars into the ``cutouts`` table with
  :func:`warehouse.cutouts.ingest_cutouts`. Lists are named by the SHA-256 of their content and
  kept with their tars under ``ROOT/cache/hsc_cutouts/``: a rerun asks only for objects and
  bands not fetched yet, and ingests only tars not ingested yet. A tar whose ingest left
  cutouts out (no object of ``hsc_forced`` at their centre, ...) is marked with what it was
  matched against (``<tar>.left-out``: the hsc_forced version and the bands) and ingested again
  only when that changed, so a rerun with nothing new changes nothing and says so.

Credentials come from ``$HSC_SSP_CAS_USER`` / ``$HSC_SSP_CAS_PASSWORD`` or a prompt; the
password is never printed, logged or written (the clients mask it in every message).
"""

from __future__ import annotations

import filecmp
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from loaders import registry
from loaders.hsc_ssp.cutouts import ingest_cutouts
from loaders.hsc_ssp.das import (
    FILTERS,
    _size_text,
    fetch_batch,
    filter_name,
    read_mapping,
    write_batch_lists,
)
from loaders.hsc_ssp.sql_cache import cached_result, result_row_count, run_sql
from loaders.hsc_ssp.sql_jobs import OUT_FORMATS, hsc_ssp_credentials
from loaders.http.session import Credentials, RetryPolicy
from warehouse.db import quote_ident
from warehouse.errors import CutoutError, CutoutsLeftOutError, LoadError, QueryError
from warehouse.files import atomic_write_bytes, json_hash
from warehouse.output.saving import refuse_existing

__all__ = ["CutoutFetch", "SqlFetch", "fetch_hsc_cutouts", "fetch_hsc_sql", "read_sql"]

log = logging.getLogger(__name__)

_FULL_LINE_COMMENT = re.compile(r"^\s*--.*$", re.M)


def _sql_path(path: Path) -> Path:
    """``path``, or the query gwh ships under that name (``sql/sources/galaxiesml_pdr2.sql``, as
    the README and --help give it, works from any folder, not only from a checkout)."""
    if path.is_file():
        return path
    shipped = Path(str(resources.files("sql"))).parent / path
    if not path.is_absolute() and path.parts[:1] == ("sql",) and shipped.is_file():
        return shipped
    sources = Path(str(resources.files("sql"))) / "sources"
    raise QueryError(
        f"{path}: no such SQL file. Check the path; the queries gwh ships are in {sources} "
        "(give e.g. sql/sources/galaxiesml_pdr2.sql from any folder)."
    )


def read_sql(sql: str | None, sql_file: str | os.PathLike[str] | None) -> str:
    """The query text from ``--sql`` or ``--sql-file``, without whole-line ``--`` comments.

    Whole-line comments are documentation for people (sql/sources/galaxiesml_pdr2.sql has
    them); the archive gets the statement only.
    """
    if (sql is None) == (sql_file is None):
        raise QueryError("give exactly one of --sql and --sql-file")
    if sql_file is not None:
        path = _sql_path(Path(sql_file))
        try:
            sql = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise QueryError(
                f"{path} is not UTF-8 text ({exc.reason}): give an SQL file."
            ) from None
    assert sql is not None
    text = _FULL_LINE_COMMENT.sub("", sql).strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise QueryError("the SQL is empty (only comments?)")
    return text


@dataclass(frozen=True)
class SqlFetch:
    cached: Path
    out: Path
    rows: int
    loaded: list = field(default_factory=list)


def fetch_hsc_sql(
    wh,  # type: ignore[no-untyped-def]
    *,
    release: str,
    out: str | os.PathLike[str],
    sql: str | None = None,
    sql_file: str | os.PathLike[str] | None = None,
    out_format: str | None = None,
    load: str | None = None,
    credentials: Credentials | None = None,
    poll_timeout: float = 600.0,
    allow_empty: bool = False,
    overwrite: bool = False,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    echo: Callable[[str], None] = lambda _m: None,
) -> SqlFetch:
    """Run SQL on the HSC-SSP archive (or read the cache), write ``out``, optionally load it.

    ``out_format`` defaults to the suffix of ``out`` (``.fits`` or ``.csv``). Without
    ``overwrite``, an existing ``out`` is replaced only by the same bytes (a rerun of the same
    query, from the cache); one holding anything else is refused before the job is submitted.
    """

    text = read_sql(sql, sql_file)
    out = Path(out)
    fmt = out_format or out.suffix.lower().lstrip(".")
    if fmt not in OUT_FORMATS:
        raise QueryError(
            f"--out {out}: the archive writes {' or '.join(OUT_FORMATS)}; name the file "
            "*.fits or *.csv (FITS keeps 64-bit object_id exact)."
        )
    if load is not None and load not in registry.names():
        raise LoadError(f"--load {load!r} is not a loader; use hsc-forced or hsc-specz.")
    if not poll_timeout > 0:  # NaN too: checked before the job is submitted
        raise QueryError(f"--poll-timeout must be a positive number of seconds, got {poll_timeout}")
    wh.layout.refuse_owned(out, "--out")
    cache_dir = wh.layout.cache("hsc_sql")
    try:
        if not _is_copy_of(out, cached_result(text, release, fmt, cache_dir)):
            refuse_existing(out, overwrite)  # a user's file (gwh sql --out refuses it too)
        cached = run_sql(
            text,
            release=release,
            out_format=fmt,
            cache_dir=cache_dir,
            credentials=credentials,
            base_url=wh.config.archives.hsc_ssp_url,
            poll_timeout=poll_timeout,
            allow_empty=allow_empty,
            sleep=sleep,
            retry=retry,
        )
    except ValueError as exc:  # bad release or format, empty SQL
        raise QueryError(str(exc)) from None
    rows = result_row_count(cached, fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    shutil.copyfile(cached, tmp)
    os.replace(tmp, out)
    echo(f"wrote {rows:,} rows to {out} (cached as {cached.name})")
    loaded = []
    if load is not None:
        loaded = wh.load(registry.get(load), [out], echo=echo)
    return SqlFetch(cached, out, rows, loaded)


def _is_copy_of(out: Path, cached: Path) -> bool:
    """``out`` holds the bytes of ``cached`` (a rerun of the same query rewrites its own file)."""
    return out.is_file() and cached.is_file() and filecmp.cmp(cached, out, shallow=False)


# -- cutouts ---------------------------------------------------------------------------------------


@dataclass
class CutoutFetch:
    objects: int
    lists_written: int = 0
    tars_fetched: int = 0
    tars_ingested: int = 0
    images: int = 0
    folder: Path | None = None

    def summary(self) -> str:
        return (
            f"{self.objects:,} objects: {self.tars_fetched} tar(s) fetched, {self.tars_ingested} "
            f"ingested ({self.images:,} band images) in {self.folder}"
        )


def _done_objects(folder: Path, band: str, size: str, rerun: str) -> set[int]:
    """Objects of this band, size and rerun whose tar is already here."""

    done: set[int] = set()
    for mapping in folder.glob("c*-*.json"):
        try:
            data = read_mapping(mapping)
        except CutoutError:
            continue
        if (data.get("band"), data.get("size"), data.get("rerun")) != (band, size, rerun):
            continue
        if mapping.with_suffix(".tar").is_file():
            done.update(int(r["object_id"]) for r in data["rows"])
    return done


def _match_state(wh) -> str:  # type: ignore[no-untyped-def]
    """What a tar's cutouts are matched against: the committed hsc_forced version (objects by
    position) and the configured bands."""
    cv = wh.current_version("hsc_forced")
    forced = (cv.collection or cv.path).name if cv is not None else "not loaded"
    return f"hsc_forced {forced}, bands {''.join(wh.config.bands)}"


def _left_out_state(tar: Path) -> str | None:
    """The state a tar with cutouts left out was last ingested against (None: never)."""
    try:
        return tar.with_suffix(".left-out").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def fetch_hsc_cutouts(
    wh,  # type: ignore[no-untyped-def]
    *,
    bands: str | Sequence[str] = "grizy",
    size: str = "20arcsec",
    view: str = "ml_objects",
    rerun: str = "pdr2_wide",
    credentials: Credentials | None = None,
    ingest: bool = True,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    echo: Callable[[str], None] = lambda _m: None,
) -> CutoutFetch:
    """Fetch DAS cutouts of every object of ``view`` and ingest them (see the module doc).

    Raises
    ------
    AuthenticationError, ArchiveError
        The archive refused the credentials, or failed after retries (tars already fetched
        stay; a rerun continues from them).
    CutoutError
        Bad bands or size, an empty view, or cutouts that did not ingest (each named).
    """

    if isinstance(bands, str):  # 'grizy' is five bands, 'HSC-I2' one
        band_list = list(bands) if all(b in FILTERS for b in bands) else [bands]
    else:
        band_list = list(bands)
    try:
        for b in band_list:
            filter_name(b)
        side = _size_text(size)
    except ValueError as exc:
        raise CutoutError(str(exc)) from None
    try:
        rows = wh.query(f"SELECT object_id, ra, dec FROM {quote_ident(view)} ORDER BY object_id")
    except QueryError as exc:
        raise CutoutError(f"cannot list the objects of {view}: {exc}") from None
    if rows.num_rows == 0:
        raise CutoutError(f"{view} has no rows: nothing to fetch.")
    triples = list(
        zip(
            rows.column("object_id").to_pylist(),
            rows.column("ra").to_pylist(),
            rows.column("dec").to_pylist(),
            strict=True,
        )
    )
    folder = wh.layout.cache("hsc_cutouts")
    folder.mkdir(parents=True, exist_ok=True)
    report = CutoutFetch(objects=len(triples), folder=folder)
    creds = credentials
    base = wh.config.archives.hsc_ssp_url
    for band in band_list:
        done = _done_objects(folder, band, side, rerun)
        missing = [t for t in triples if int(t[0]) not in done]
        echo(
            f"HSC-SSP cutouts {band}: {len(triples):,} objects of {view}, "
            f"{len(triples) - len(missing):,} fetched before, {len(missing):,} to fetch"
        )
        for start in range(0, len(missing), 1000):
            chunk = missing[start : start + 1000]
            prefix = "c" + json_hash(
                {"ids": [int(t[0]) for t in chunk], "size": side, "rerun": rerun}
            )
            try:
                (list_path,) = write_batch_lists(
                    chunk, bands=[band], size=side, rerun=rerun, out_dir=folder, prefix=prefix
                )
            except ValueError as exc:
                raise CutoutError(f"cannot write a cutout list: {exc}") from None
            report.lists_written += 1
            if creds is None:
                creds = hsc_ssp_credentials()
            tar = fetch_batch(
                list_path, folder, credentials=creds, base_url=base, retry=retry, sleep=sleep
            )
            report.tars_fetched += 1
            echo(f"  {tar.name}: {len(chunk):,} rows")
    if not ingest:
        return report
    pending = sorted(t for t in folder.glob("c*.tar") if not t.with_suffix(".ingested").is_file())
    state = _match_state(wh)
    settled = [t for t in pending if _left_out_state(t) == state]
    pending = [t for t in pending if t not in settled]
    if settled:
        echo(
            f"{len(settled)} tar(s) ingested before with cutouts left out (named then): nothing "
            f"new to match them against ({state}), so not ingested again; load the objects they "
            "need (gwh load hsc-forced FILE) and rerun"
        )
    if not pending:
        if not settled:
            echo("every fetched tar is ingested already")
        return report
    try:
        result = ingest_cutouts(wh, pending, echo=echo)
    except CutoutsLeftOutError:
        # the others were committed: a rerun matches these tars again only once the state
        # they were matched against has changed (ingesting again replaces an object's band)
        for tar in pending:
            atomic_write_bytes(tar.with_suffix(".left-out"), f"{state}\n".encode())
        raise
    for tar in pending:
        atomic_write_bytes(tar.with_suffix(".ingested"), b"ingested\n")
        tar.with_suffix(".left-out").unlink(missing_ok=True)
    report.tars_ingested = len(pending)
    report.images = result.images
    return report
