"""A real Orthanc for the tests: own JSON config, storage in a temp folder, 127.0.0.1 only, auth on."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

PLUGIN_NAME = "libOrthancDicomWeb.so"
PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc", "/usr/local/share/orthanc/plugins",
               "/usr/lib/x86_64-linux-gnu/orthanc", "/usr/lib/aarch64-linux-gnu/orthanc")
USER, PASSWORD = "radiologist", "correct-horse-battery"
# Rejects SEG objects of one patient: how the tests make a real STOW-RS store fail.
REJECTING_PATIENT = "REJECT-SEG"
_LUA_FILTER = f"""
function ReceivedInstanceFilter(dicom, origin, info)
  if dicom.Modality == 'SEG' and dicom.PatientID == '{REJECTING_PATIENT}' then
    return false
  end
  return true
end
"""


def orthanc_binary() -> Optional[str]:
    """The Orthanc executable (Debian package `orthanc`), or None."""
    return shutil.which("Orthanc") or next(
        (p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if os.access(p, os.X_OK)), None)


def dicomweb_plugin() -> Optional[str]:
    """The DICOMweb plugin (Debian package `orthanc-dicomweb`), or None."""
    for folder in PLUGIN_DIRS:
        path = Path(folder)
        if not path.is_dir():
            continue
        for candidate in sorted(path.glob(f"{PLUGIN_NAME}*")):
            if candidate.is_file():
                return str(candidate)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class OrthancServer:
    """A running Orthanc; `dicomweb_url` is its DICOMweb root."""

    process: subprocess.Popen
    http_port: int
    folder: Path
    log_path: Path

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.rest_url}/dicom-web"

    def dicomweb_series_url(self, series_uid: str) -> str:
        return f"dicomweb+http://127.0.0.1:{self.http_port}/dicom-web?series={series_uid}"

    def rest(self, method: str, path: str, **kwargs):
        import requests

        response = requests.request(method, self.rest_url + path, auth=(USER, PASSWORD),
                                    timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def upload_folder(self, folder: Path) -> list[str]:
        """Upload every file of `folder` through Orthanc's own REST API; returns instance ids."""
        ids = []
        for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
            ids.append(self.rest("POST", "/instances", data=path.read_bytes())["ID"])
        return ids

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def start_orthanc(folder: Path, timeout_s: float = 60.0) -> OrthancServer:
    """Start Orthanc with its own config and storage under `folder`; waits until it answers."""
    import requests

    binary, plugin = orthanc_binary(), dicomweb_plugin()
    if binary is None or plugin is None:
        raise RuntimeError(f"Orthanc ({binary}) or its DICOMweb plugin ({plugin}) is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    lua = folder / "filter.lua"
    lua.write_text(_LUA_FILTER)
    config = {
        "Name": "napari-sam2-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "HttpServerEnabled": True,
        "Plugins": [plugin],
        "LuaScripts": [str(lua)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "StudiesMetadata": "Full"},
        "StorageCompression": False,
        "HttpCompressionEnabled": False,
    }
    config_path = folder / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=1))
    log_path = folder / "orthanc.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([binary, str(config_path)], stdout=log, stderr=subprocess.STDOUT,
                                   cwd=str(folder), start_new_session=True)
    server = OrthancServer(process, http_port, folder, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with code {process.returncode}:\n{server.log()}")
        try:
            if requests.get(server.dicomweb_url + "/studies", auth=(USER, PASSWORD),
                            timeout=2).status_code == 200:
                return server
        except requests.exceptions.RequestException:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"Orthanc did not answer within {timeout_s:.0f} s:\n{server.log()}")
