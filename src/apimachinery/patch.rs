//! Patches: JSON patch, JSON merge patch and strategic merge patch (ObjectMeta rules and directives).
