"""normalize layer (L3): native records to ECS events, one module per source family.

Pure and synchronous. Malformed records raise (or, through :class:`Normalizer`,
return) :class:`detector.errors.NormalizeError`. The field contract is in
``docs/mappings/`` and the lead's event contract.
"""

from detector.normalize.ci import normalize_ci, normalize_github, normalize_gitlab
from detector.normalize.cloudtrail import ECR_OPERATIONS, normalize_cloudtrail
from detector.normalize.normalizer import (
    NORMALIZERS,
    Normalizer,
    detect_family,
    normalize_record,
)
from detector.normalize.registry import normalize_distribution, normalize_harbor, normalize_registry
from detector.normalize.vault import normalize_vault

#: True when this package runs as mypyc-compiled C extensions (see ``setup.py``);
#: compiled and interpreted builds give identical events, at different speeds.
COMPILED = not __file__.endswith(".py")

__all__ = [
    "COMPILED",
    "ECR_OPERATIONS",
    "NORMALIZERS",
    "Normalizer",
    "detect_family",
    "normalize_ci",
    "normalize_cloudtrail",
    "normalize_distribution",
    "normalize_github",
    "normalize_gitlab",
    "normalize_harbor",
    "normalize_record",
    "normalize_registry",
    "normalize_vault",
]
