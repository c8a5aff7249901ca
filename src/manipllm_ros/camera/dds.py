"""A Fast DDS profile that keeps camera images in shared memory.

Fast DDS's default shared-memory segment is 0.5 MB, smaller than one 640x480 RGB image (0.9 MB) or its aligned
depth (0.6 MB), so on one machine every image travels over UDP loopback in ~64 KB fragments; under CPU load
fragments are lost and reliable topics fall behind (benchmarks/camera_rate.md, three runs on a loaded 2-core
machine: 17-27 complete frames/s and 11-43 % drops with the default, 30 frames/s and at most 0.33 % drops with a
16 MB segment; best-effort topics lose 87-97 % of images with the default, none with the profile). Point
FASTDDS_DEFAULT_PROFILES_FILE at `fastdds_profile()` in every process of the system (UDP stays enabled, so
other machines still connect).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SHM_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<!-- manipllm: shared memory large enough for camera images, UDP for everything else. -->
<profiles xmlns="http://www.eprosima.com">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>manipllm_shm</transport_id>
      <type>SHM</type>
      <segment_size>{size}</segment_size>
    </transport_descriptor>
    <transport_descriptor>
      <transport_id>manipllm_udp</transport_id>
      <type>UDPv4</type>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="manipllm_default" is_default_profile="true">
    <rtps>
      <userTransports>
        <transport_id>manipllm_shm</transport_id>
        <transport_id>manipllm_udp</transport_id>
      </userTransports>
      <useBuiltinTransports>false</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
"""


def fastdds_profile(path: str | Path | None = None, segment_mb: int = 16) -> Path:
    """Write the profile (default: a per-user file under the temp directory) and return its path."""
    if segment_mb < 1:
        raise ValueError(f"segment_mb must be >= 1, got {segment_mb}")
    if path is None:
        path = Path(tempfile.gettempdir()) / f"manipllm-fastdds-shm{segment_mb}-{os.getuid()}.xml"
    path = Path(path)
    text = SHM_PROFILE.format(size=segment_mb * 2**20)
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)  # atomic: processes starting in parallel never read half a file
    return path
