"""`pysuper export compose|kubernetes`: a pysuper config -> Compose file or Kubernetes manifests.

The package keeps the mapping apart from the YAML writing:
  common.py      what both targets share: the units to export (replicas), ${VAR} translation,
                 check ports, comments and warnings (the Export record)
  compose.py     config -> one compose-spec document (plain dicts)
  kubernetes.py  config -> Deployments, Services and Jobs (plain dicts)
  yamltext.py    Export -> YAML text with comments (PyYAML, imported only here)
  command.py     the command line: options, loading the config, writing the result
"""
