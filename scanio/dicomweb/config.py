"""Where a series lives (`dicomweb://` URLs) and how to log in (environment or config file).

URL form: `dicomweb://HOST[:PORT]/PATH?series=UID[&study=UID]` is the DICOMweb base URL
`https://HOST[:PORT]/PATH`; `dicomweb+http://...` for a server without TLS (a local test
archive), `dicomweb+https://...` is the same as `dicomweb://`.

Credentials never come from the command line (they would show in `ps` and shell history):
- environment: `NAPARI_SAM2_DICOMWEB_TOKEN` (bearer token), or `NAPARI_SAM2_DICOMWEB_USER`
  and `NAPARI_SAM2_DICOMWEB_PASSWORD` (HTTP basic); `NAPARI_SAM2_DICOMWEB_CA_BUNDLE` (a CA
  file for a private certificate authority);
- or a JSON file, `$NAPARI_SAM2_DICOMWEB_CONFIG` or `<user config dir>/napari-sam2/dicomweb.json`:
  `{"servers": {"https://pacs.example.org/dicom-web": {"username": "...", "password": "...",
  "token": "...", "ca_bundle": "...", "verify_tls": true}}, "default": "https://..."}`; the
  entry whose URL is the longest prefix of the server's URL applies. The environment wins.
TLS certificates are always verified unless that server's entry says `"verify_tls": false`.
"""

from __future__ import annotations

import json
import os
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlsplit, urlunsplit

from scanio.dicomweb.errors import DicomWebURLError

ENV_USER = "NAPARI_SAM2_DICOMWEB_USER"
ENV_PASSWORD = "NAPARI_SAM2_DICOMWEB_PASSWORD"
ENV_TOKEN = "NAPARI_SAM2_DICOMWEB_TOKEN"
ENV_CA_BUNDLE = "NAPARI_SAM2_DICOMWEB_CA_BUNDLE"
ENV_CONFIG = "NAPARI_SAM2_DICOMWEB_CONFIG"
ENV_CACHE = "NAPARI_SAM2_DICOMWEB_CACHE"
ENV_DEFAULT_SERVER = "NAPARI_SAM2_DICOMWEB_URL"

URL_SCHEMES = {"dicomweb": "https", "dicomweb+https": "https", "dicomweb+http": "http"}
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def is_dicomweb_url(text) -> bool:
    """True for `dicomweb://...`, `dicomweb+http://...` and `dicomweb+https://...` strings."""
    return isinstance(text, str) and text.split("://", 1)[0].lower() in URL_SCHEMES and "://" in text


def check_uid(uid: str, what: str = "UID", server: str = "") -> str:
    """`uid` if it is a valid DICOM UID (digits and dots, at most 64 characters), else an error.

    UIDs become folder and file names in the cache, so this also keeps paths inside it.
    """
    uid = str(uid).strip()
    if not uid or len(uid) > 64 or not _UID_RE.match(uid):
        raise DicomWebURLError(
            f"{what} {uid!r} is not a DICOM UID (digits and dots, at most 64 characters)", server)
    return uid


@dataclass(frozen=True)
class SeriesLocation:
    """One series on one DICOMweb server: `base_url` is http(s)://host[:port]/path."""

    base_url: str
    series_uid: str
    study_uid: Optional[str] = None

    def url(self) -> str:
        """The `dicomweb://` form of this location (round-trips through `parse_dicomweb_url`)."""
        parts = urlsplit(self.base_url)
        scheme = "dicomweb" if parts.scheme == "https" else "dicomweb+http"
        query = f"series={self.series_uid}" + (f"&study={self.study_uid}" if self.study_uid else "")
        return urlunsplit((scheme, parts.netloc, parts.path, query, ""))


def normalise_base_url(url: str) -> str:
    """An http(s) base URL without query, fragment, user info or trailing slash."""
    parts = urlsplit(str(url).strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise DicomWebURLError(
            f"server URL {url!r} must look like https://host[:port]/path (the DICOMweb root, "
            "e.g. https://pacs.example.org/dicom-web)", str(url))
    if parts.username or parts.password:
        raise DicomWebURLError(
            f"server URL {parts.scheme}://...@{parts.hostname}: credentials in the URL are not "
            f"accepted; set {ENV_USER}/{ENV_PASSWORD} or {ENV_TOKEN}, or use the config file",
            f"{parts.scheme}://{parts.hostname}")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise DicomWebURLError(f"server URL {url!r}: {exc}", str(url)) from None
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"), "", ""))


def parse_dicomweb_url(url: str) -> SeriesLocation:
    """`dicomweb://HOST[:PORT]/PATH?series=UID[&study=UID]` -> `SeriesLocation`."""
    if not is_dicomweb_url(url):
        raise DicomWebURLError(
            f"{url!r} is not a dicomweb:// URL (dicomweb://HOST[:PORT]/PATH?series=UID)", "")
    scheme, rest = url.split("://", 1)
    parts = urlsplit(f"{URL_SCHEMES[scheme.lower()]}://{rest}")
    base = normalise_base_url(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"series", "study"})
    if unknown:
        raise DicomWebURLError(f"{url}: unknown parameter(s) {unknown}; use series=UID[&study=UID]",
                               base)
    series = query.get("series", [""])
    if len(series) != 1 or not series[0]:
        raise DicomWebURLError(f"{url}: name one series with ?series=UID", base)
    study = query.get("study", [None])[0]
    return SeriesLocation(base, check_uid(series[0], "series", base),
                          check_uid(study, "study", base) if study else None)


def series_location(scan: str = "", server: Optional[str] = None,
                    series: Optional[str] = None, study: Optional[str] = None) -> Optional[SeriesLocation]:
    """The remote series a command names (`dicomweb://` SCAN, or `--server` and `--series`), or None."""
    if is_dicomweb_url(scan):
        if server or series:
            raise DicomWebURLError("give either a dicomweb:// URL or --server/--series, not both", "")
        return parse_dicomweb_url(scan)
    if server or series:
        if not (server and series):
            raise DicomWebURLError("--server and --series go together (the DICOMweb root URL "
                                   "and the SeriesInstanceUID)", server or "")
        base = normalise_base_url(server)
        return SeriesLocation(base, check_uid(series, "series", base),
                              check_uid(study, "study", base) if study else None)
    return None


@dataclass(frozen=True)
class ServerConfig:
    """How to talk to one server. `verify_tls`: bool, or the path of a CA bundle."""

    base_url: str
    username: Optional[str] = None
    password: Optional[str] = None
    token: Optional[str] = None
    verify_tls: object = True
    timeout_s: float = 60.0

    def __repr__(self) -> str:  # never print secrets
        auth = "token" if self.token else ("basic" if self.username else "none")
        return f"ServerConfig({self.base_url!r}, auth={auth}, verify_tls={self.verify_tls!r})"

    def how_to_log_in(self) -> str:
        """The sentence that tells a user where credentials come from."""
        return (f"set {ENV_USER} and {ENV_PASSWORD} (or {ENV_TOKEN}) in the environment, or add "
                f"this server to {config_file_path()}")


def config_file_path() -> Path:
    """`$NAPARI_SAM2_DICOMWEB_CONFIG`, or `dicomweb.json` in napari-sam2's user config folder."""
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("napari-sam2")) / "dicomweb.json"


def _read_config_file(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DicomWebURLError(f"{path}: DICOMweb config file is not valid JSON: {exc}", "") from None
    if not isinstance(data, dict) or not isinstance(data.get("servers", {}), dict):
        raise DicomWebURLError(f'{path}: expected {{"servers": {{"URL": {{...}}}}}}', "")
    if os.name == "posix" and path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        if any(isinstance(v, dict) and (v.get("password") or v.get("token"))
               for v in data.get("servers", {}).values()):
            warnings.warn(f"{path} holds passwords or tokens and others can read it: chmod 600 {path}",
                          stacklevel=3)
    return data


def default_server() -> Optional[str]:
    """The server to offer first: `$NAPARI_SAM2_DICOMWEB_URL`, else the config file's `default`."""
    env = os.environ.get(ENV_DEFAULT_SERVER)
    if env:
        return env
    data = _read_config_file(config_file_path())
    value = data.get("default") or next(iter(data.get("servers", {}) or {}), None)
    return str(value) if value else None


def _matching_entry(base_url: str, servers: dict) -> dict:
    best, best_len = {}, -1
    for url, entry in servers.items():
        try:
            prefix = normalise_base_url(url)
        except DicomWebURLError:
            continue
        if (base_url == prefix or base_url.startswith(prefix + "/")) and len(prefix) > best_len:
            best, best_len = (entry if isinstance(entry, dict) else {}), len(prefix)
    return best


def load_server_config(base_url: str, timeout_s: float = 60.0) -> ServerConfig:
    """Credentials and TLS settings for `base_url`: environment first, then the config file."""
    base_url = normalise_base_url(base_url)
    entry = _matching_entry(base_url, _read_config_file(config_file_path()).get("servers", {}))
    token = os.environ.get(ENV_TOKEN) or entry.get("token")
    username = os.environ.get(ENV_USER) or entry.get("username")
    password = os.environ.get(ENV_PASSWORD) if os.environ.get(ENV_USER) else entry.get("password")
    verify: object = entry.get("verify_tls", True) is not False
    ca_bundle = os.environ.get(ENV_CA_BUNDLE) or entry.get("ca_bundle")
    if ca_bundle and verify:
        verify = str(Path(ca_bundle).expanduser())
    return ServerConfig(base_url, username=username or None, password=password, token=token or None,
                        verify_tls=verify, timeout_s=float(entry.get("timeout_s", timeout_s)))
