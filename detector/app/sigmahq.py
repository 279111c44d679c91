"""The bundled SigmaHQ cloud pack and the tuning it ships with.

``detections/sigmahq`` holds SigmaHQ's CloudTrail and GitHub audit rules at a pinned commit
(``UPSTREAM.md``). It is loaded by default beside the project's pack (the default of
``rules.paths``), and the rules listed here are off by default (the default of
``rules.disabled``): hunting rules and broad low-level rules that fire on routine activity,
and rules a project rule replaces with a narrower one. DETECTIONS.md ("The bundled SigmaHQ
pack") says why for each.
"""

from __future__ import annotations

from pathlib import Path

#: Where the pack lives, relative to the working directory (as ``detections/rules``).
SIGMAHQ_RULES = Path("detections/sigmahq")

#: SigmaHQ rule id -> title, for every rule of the pack the shipped tuning turns off.
SIGMAHQ_DISABLED: dict[str, str] = {
    # hunting and broad rules that fire on routine activity
    "905d389b-b853-46d0-9d3d-dea0d3a3cd49": "AWS STS AssumeRole Misuse",
    "b45ab1d2-712f-4f01-a751-df3826969807": "AWS STS GetSessionToken Misuse",
    "f305fd62-beca-47da-ad95-7690a0620084": "Potential Bucket Enumeration on AWS",
    "e1f7febb-7b94-4234-b5c6-00fb8500f5dd": "New Network ACL Entry Added",
    "c803b2ce-c4a2-4836-beae-b112010390b1": "New Network Route Added",
    "33d50d03-20ec-4b74-a74e-1e65a38af1c0": "AWS EKS Cluster Created or Deleted",
    "4ae68615-866f-4304-b24b-ba048dfa5ca7": "AWS ElastiCache Security Group Created",
    "7c797da2-9cf2-4523-ba64-33b06339f0cc": "AWS ElastiCache Security Group Modified or Deleted",
    "78b3756a-7804-4ef7-8555-7b9024a02e2d": "AWS S3 Data Management Tampering",
    "7a4409fc-f8ca-45f6-8006-127d779eaad9": "LoadBalancer Security Group Modification",
    "457cc9ac-d8e6-4d1d-8c0e-251d0f11a74c": "Modification or Deletion of an AWS RDS Cluster",
    "3908d64a-3c06-4091-b503-b3a94424533b": "New Github Organization Member Added",
    "f9405037-bc97-4eb7-baba-167dad399b83": "Github New Secret Created",
    "dca8991c-cb16-4128-abf8-6b11e5cd156f": "GitHub Repository Archive Status Changed",
    # replaced by a narrower rule of the project's pack
    "4db60cc0-36fb-42b7-9b58-a5b53019fb74": "AWS CloudTrail Important Change",
    "e386b9b5-af12-450e-afff-761730fb8a98": "AWS VPC Flow Logs Deleted",
    "0a5177f4-6ca9-44c2-aacf-d3f3d8b6e4d2": "AWS IAM Backdoor Users Keys",
    "055fb148-60f8-462d-ad16-26926ce050f1": "AWS User Login Profile Was Modified",
    "1ab3c5ed-5baf-417b-bb6b-78ca33f6c3df": "AWS EC2 Startup Shell Script Change",
    "77caf516-34e5-4df9-b4db-20744fea0a60": "AWS Successful Console Login Without MFA",
    "6fb77778-040f-4015-9440-572aa9b6b580": "Ingress/Egress Security Group Modification",
    "97fbabf8-8e1b-47a2-b7d5-a418d2b95e3d": "AWS New Lambda Layer Attached",
    "f8ed0e8f-7438-4b79-85eb-f358ef2fbebd": "Github Self Hosted Runner Changes Detected",
    "abae8fec-57bd-4f87-aff6-6e3db989843d": "AWS Snapshot Backup Exfiltration",
}
