"""``warehouse.toml``: the warehouse's configuration, validated with messages that name the key.

Example
-------
>>> cfg = Config.default()
>>> cfg.bands
('g', 'r', 'i', 'z', 'y')
"""

from __future__ import annotations

import math
import os
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from warehouse.errors import ConfigError
from warehouse.files import CONFIG_NAME

SPLIT_NAMES = ("train", "validation", "test")
SPLIT_MODES = ("object", "healpix")
_BAND_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")

DEFAULT_TOML = """\
# galaxy-warehouse configuration. Edit, then rerun any gwh command: views follow it.

[warehouse]
# Bands in the order images and per-band columns use (GalaxiesML: g, r, i, z, y).
bands = ["g", "r", "i", "z", "y"]

[partitioning]
# A HEALPix pixel holding more rows than this is split into its four children (hats-import's
# default is 1,000,000). Partitions never go deeper than max_order.
max_rows_per_partition = {max_rows}
max_order = 19
# Every table gets a HATS margin catalog: the rows within this many arcsec of each partition's
# border, so lsdb cross-matches and cone searches are complete at partition edges. lsdb refuses
# a cross-match radius larger than the margin (the spec-z match radius is 0.5").
margin_arcsec = {margin_arcsec}

[cutouts]
# Image cutouts are ~1 MB per object (5 bands x image, variance, mask), so their table splits a
# HEALPix pixel at far fewer rows than a catalog: an export holds one partition's pixels of one
# plane (image, variance or mask) in memory at a time.
max_rows_per_partition = {cutouts_max_rows}

[splits]
# Fractions of train / validation / test. GalaxiesML used 204,573 / 40,914 / 40,914 objects
# (about 70/15/15), which is the default here; its text also states 60/20/20.
train = {train}
validation = {validation}
test = {test}
# Assignment is a pure function of (salt, key): change the salt to draw a new split.
salt = "{salt}"
# "object": each object on its own (key = object_id).
# "healpix": whole HEALPix cells of order healpix_order go to one split, so sky neighbours
# never straddle train and test.
mode = "{mode}"
healpix_order = {healpix_order}

[archives]
# Base URLs of the archive services the fetch commands use. An environment variable wins over
# each: $GWH_HSC_SSP_URL, $GWH_MAST_URL, $GWH_SDSS_URL, $GWH_SDSS_SAS_URL.
hsc_ssp_url = "{hsc_ssp_url}"
mast_url = "{mast_url}"
# SkyServer (SQL) and the Science Archive Server (imaging frames). When sdss_url points at
# another host and sdss_sas_url is left at its default, frames are read from <sdss_url>/sas.
sdss_url = "{sdss_url}"
sdss_sas_url = "{sdss_sas_url}"

[compute]
# The Dask scheduler that gwh load, gwh morphology measure and gwh export use: "local:N" (a local
# cluster of N worker processes) or an address such as "tcp://scheduler:8786". --dask and
# $GWH_DASK_SCHEDULER win over it; leave it out to run on this machine alone.
# dask = "local:2"
"""


LOCAL_CLUSTER = re.compile(r"^local:(\d+)$")
"""``local:N``: a distributed.LocalCluster of N worker processes on this machine."""
HOST_PORT = re.compile(
    r"^(?:(?:tcp|tls|ws|wss)://)?(?:\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+):\d+$"  # [proto://]host:port
    r"|^(?!(?:tcp|tls|ws|wss)://)[a-z][a-z0-9+.-]*://\S+$"  # another protocol: distributed's
)
"""A scheduler address as distributed takes it: host:port, with tcp/tls/ws(s) or no protocol
(another protocol, e.g. ucx://, is passed through for distributed to judge)."""


def most_local_processes() -> int:
    """The most worker processes a command starts on this machine (``local:N``, ``--workers``):
    four per core, at least 8. More only share the same cores, each with its memory."""
    return max(8, 4 * (os.cpu_count() or 1))


def too_many_processes(option: str, n: int) -> str | None:
    """What to say of ``option n`` starting ``n`` processes here (None: not too many)."""
    if n <= most_local_processes():
        return None
    return (
        f"{option} {n:,} would start that many processes on this machine's "
        f"{os.cpu_count() or 1} core(s): give at most {most_local_processes()}, or --dask with a "
        "cluster's scheduler address"
    )


def dask_address_problem(address: str, here: bool = True) -> str | None:
    """What is wrong with a Dask scheduler as written, to follow its name (None: nothing):
    ``local:N`` with N >= 1 (and, ``here``, at most :func:`most_local_processes`), or an address
    distributed takes. ``here=False`` checks the writing only (a warehouse.toml may be shared
    by machines of other sizes)."""
    if address.startswith("local"):
        m = LOCAL_CLUSTER.match(address)
        if m is None or int(m.group(1)) < 1:
            return (
                ": write local:N with N >= 1 worker processes (e.g. local:2), or a scheduler "
                "address such as tcp://host:8786"
            )
        n, most = int(m.group(1)), most_local_processes()
        if here and n > most:
            return (
                f" would start {n:,} worker processes on this machine's {os.cpu_count() or 1} "
                f"core(s): use local:N with N <= {most}, or a scheduler address such as "
                "tcp://host:8786 for a cluster"
            )
        return None
    if not HOST_PORT.match(address):
        return (
            " is no scheduler address: write tcp://host:port (e.g. tcp://10.0.0.5:8786), or "
            "local:N for N worker processes on this machine"
        )
    return None


@dataclass(frozen=True)
class SplitConfig:
    """Deterministic split assignment parameters."""

    train: float = 0.70
    validation: float = 0.15
    test: float = 0.15
    salt: str = "gwh-v1"
    mode: str = "object"
    healpix_order: int = 7

    def __post_init__(self) -> None:
        for name in SPLIT_NAMES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"[splits] {name} must be a number, got {value!r}")
            if not 0.0 <= float(value) <= 1.0 or math.isnan(float(value)):
                raise ConfigError(f"[splits] {name} must be between 0 and 1, got {value}")
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-9:
            raise ConfigError(
                f"[splits] train + validation + test must add up to 1, got {total:g} "
                f"({self.train} + {self.validation} + {self.test})"
            )
        if not isinstance(self.salt, str) or not self.salt:
            raise ConfigError("[splits] salt must be a non-empty string")
        if self.mode not in SPLIT_MODES:
            raise ConfigError(
                f"[splits] mode must be one of {', '.join(SPLIT_MODES)}, got {self.mode!r}"
            )
        if isinstance(self.healpix_order, bool) or not isinstance(self.healpix_order, int):
            raise ConfigError(
                f"[splits] healpix_order must be an integer, got {self.healpix_order!r}"
            )
        if not 0 <= self.healpix_order <= 29:
            raise ConfigError(f"[splits] healpix_order must be in 0..29, got {self.healpix_order}")


ARCHIVE_DEFAULTS = {
    "hsc_ssp_url": "https://hsc-release.mtk.nao.ac.jp",
    "mast_url": "https://mast.stsci.edu",
    "sdss_url": "https://skyserver.sdss.org",
    "sdss_sas_url": "https://data.sdss.org/sas",
}


@dataclass(frozen=True)
class ArchivesConfig:
    """Base URLs of the archives (``[archives]``); environment variables win over them."""

    hsc_ssp_url: str = ARCHIVE_DEFAULTS["hsc_ssp_url"]
    mast_url: str = ARCHIVE_DEFAULTS["mast_url"]
    sdss_url: str = ARCHIVE_DEFAULTS["sdss_url"]
    sdss_sas_url: str = ARCHIVE_DEFAULTS["sdss_sas_url"]

    def __post_init__(self) -> None:
        for name in ARCHIVE_DEFAULTS:
            value = getattr(self, name)
            if not isinstance(value, str) or not re.match(r"^https?://[^\s\"]+$", value):
                raise ConfigError(
                    f"[archives] {name} must be an http:// or https:// URL, got {value!r}"
                )


@dataclass(frozen=True)
class Config:
    """The whole of ``warehouse.toml``."""

    bands: tuple[str, ...] = ("g", "r", "i", "z", "y")
    max_rows_per_partition: int = 1_000_000
    max_order: int = 19
    margin_arcsec: float = 10.0
    splits: SplitConfig = field(default_factory=SplitConfig)
    archives: ArchivesConfig = field(default_factory=ArchivesConfig)
    cutouts_max_rows_per_partition: int = 1000
    dask: str | None = None  # [compute] dask: the default Dask scheduler (None: no Dask)

    def __post_init__(self) -> None:
        if not self.bands:
            raise ConfigError("[warehouse] bands must list at least one band")
        for band in self.bands:
            if not isinstance(band, str) or not _BAND_RE.match(band):
                raise ConfigError(
                    f"[warehouse] bands: {band!r} is not a band name (lower-case letters and "
                    'digits, e.g. "g")'
                )
        if len(set(self.bands)) != len(self.bands):
            raise ConfigError(f"[warehouse] bands lists a band twice: {list(self.bands)}")
        rows = self.max_rows_per_partition
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ConfigError(
                f"[partitioning] max_rows_per_partition must be a positive integer, got {rows!r}"
            )
        order = self.max_order
        if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 29:
            raise ConfigError(
                f"[partitioning] max_order must be an integer in 0..29, got {order!r}"
            )
        margin = self.margin_arcsec
        if (
            isinstance(margin, bool)
            or not isinstance(margin, (int, float))
            or not 0 < float(margin) <= 3600
        ):
            raise ConfigError(
                f"[partitioning] margin_arcsec must be a number of arcsec in (0, 3600], "
                f"got {margin!r}"
            )
        rows = self.cutouts_max_rows_per_partition
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ConfigError(
                f"[cutouts] max_rows_per_partition must be a positive integer, got {rows!r}"
            )
        if self.dask is not None and (not isinstance(self.dask, str) or not self.dask.strip()):
            raise ConfigError(
                f'[compute] dask must be "local:N" or a scheduler address, got {self.dask!r}'
            )
        address = (self.dask or "").strip()
        if address and address.lower() != "none":  # checked here: every command reads it
            if problem := dask_address_problem(address, here=False):
                raise ConfigError(f"[compute] dask {address!r}{problem}")

    @classmethod
    def default(cls) -> Config:
        return cls()

    def to_toml(self) -> str:
        s = self.splits
        text = DEFAULT_TOML.format(
            max_rows=self.max_rows_per_partition,
            margin_arcsec=self.margin_arcsec,
            train=s.train,
            validation=s.validation,
            test=s.test,
            salt=s.salt,
            mode=s.mode,
            healpix_order=s.healpix_order,
            cutouts_max_rows=self.cutouts_max_rows_per_partition,
            hsc_ssp_url=self.archives.hsc_ssp_url,
            mast_url=self.archives.mast_url,
            sdss_url=self.archives.sdss_url,
            sdss_sas_url=self.archives.sdss_sas_url,
        )
        bands = ", ".join(f'"{b}"' for b in self.bands)
        text = text.replace('bands = ["g", "r", "i", "z", "y"]', f"bands = [{bands}]")
        if self.dask is not None:
            text = text.replace('# dask = "local:2"', f"dask = {_toml_string(self.dask)}")
        return text.replace("max_order = 19", f"max_order = {self.max_order}")

    def as_dict(self) -> dict:
        s = self.splits
        return {
            "bands": list(self.bands),
            "max_rows_per_partition": self.max_rows_per_partition,
            "max_order": self.max_order,
            "margin_arcsec": self.margin_arcsec,
            "splits": {
                "train": s.train,
                "validation": s.validation,
                "test": s.test,
                "salt": s.salt,
                "mode": s.mode,
                "healpix_order": s.healpix_order,
            },
            "archives": {name: getattr(self.archives, name) for name in ARCHIVE_DEFAULTS},
            "cutouts": {"max_rows_per_partition": self.cutouts_max_rows_per_partition},
        }


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_KNOWN = {
    "warehouse": {"bands"},
    "partitioning": {"max_rows_per_partition", "max_order", "margin_arcsec"},
    "cutouts": {"max_rows_per_partition"},
    "splits": {"train", "validation", "test", "salt", "mode", "healpix_order"},
    "archives": set(ARCHIVE_DEFAULTS),
    "compute": {"dask"},
}


def parse_config(text: str, source: str = CONFIG_NAME) -> Config:
    """Parse and validate the text of a ``warehouse.toml``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{source} is not valid TOML: {exc}. Fix the file or rerun gwh init."
        ) from None
    for section, value in raw.items():
        if section not in _KNOWN:
            raise ConfigError(
                f"{source}: unknown section [{section}]; known: "
                + ", ".join(f"[{k}]" for k in _KNOWN)
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        unknown = set(value) - _KNOWN[section]
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(sorted(unknown))} in [{section}]; known: "
                + ", ".join(sorted(_KNOWN[section]))
            )
    wh = raw.get("warehouse", {})
    part = raw.get("partitioning", {})
    sp = raw.get("splits", {})
    ar = raw.get("archives", {})
    cu = raw.get("cutouts", {})
    try:
        bands = wh.get("bands", list(Config.bands))
        if not isinstance(bands, list):
            raise ConfigError('[warehouse] bands must be a list such as ["g", "r"]')
        splits = SplitConfig(**sp)
        return Config(
            bands=tuple(bands),
            max_rows_per_partition=part.get("max_rows_per_partition", 1_000_000),
            max_order=part.get("max_order", 19),
            margin_arcsec=part.get("margin_arcsec", 10.0),
            splits=splits,
            archives=ArchivesConfig(**ar),
            cutouts_max_rows_per_partition=cu.get("max_rows_per_partition", 1000),
            dask=raw.get("compute", {}).get("dask"),
        )
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_config(root: Path) -> Config:
    path = Path(root) / CONFIG_NAME
    if not path.exists():
        init = f"gwh init {shlex.quote(str(root))}"
        raise ConfigError(f"{path} is missing. Run `{init}` to create it.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}); TOML is UTF-8: save it as UTF-8 or rerun gwh init."
        ) from None
    return parse_config(text, str(path))
