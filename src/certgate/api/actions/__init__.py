"""ESA actions, one module per resource family; importing this package registers them all in
``certgate.api.registry.REGISTRY``."""

from certgate.api.actions import ca_certificates, certificates, edge_certificates, rules, sites

__all__ = ["ca_certificates", "certificates", "edge_certificates", "rules", "sites"]
