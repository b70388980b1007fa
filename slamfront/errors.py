"""Errors raised by slamfront. Every message names the file, line, field or key at fault."""

from __future__ import annotations


class SlamfrontError(Exception):
    """Base class of every error slamfront raises on purpose."""


class ConfigError(SlamfrontError):
    """A preset, YAML file or override is malformed: unknown key, wrong type, bad value."""


class SourceError(SlamfrontError):
    """An input sequence cannot be read: missing folder, unparseable line, missing image."""


class WeightsError(SlamfrontError):
    """Network weights are missing, truncated, the wrong file, or do not fit the network."""


class InputError(SlamfrontError):
    """An array handed to a stage has the wrong dtype, shape or values."""


class RuntimeUnavailableError(SlamfrontError):
    """An inference runtime (ONNX Runtime, TensorRT, CUDA) is not usable on this machine."""


class MapFileError(SlamfrontError):
    """A saved map is corrupt, truncated or of another format version."""


class DeviceError(SlamfrontError):
    """A live sensor is missing, unplugged or silent."""


class OutputError(SlamfrontError):
    """An output folder or file cannot be written: not a folder, not empty, not writable."""
