//! ObjectMeta rules on create and update: names, namespaces, labels, annotations, finalizers, owners.
