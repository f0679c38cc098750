//! Discovery documents: legacy (/apis, group, version) and aggregated apidiscovery.k8s.io/v2, with ETags.
