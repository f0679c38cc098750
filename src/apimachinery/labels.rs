//! Label selectors: the apimachinery string grammar, parsed by hand, and matching against labels.
