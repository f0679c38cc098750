//! Authorization: system:masters and always-allowed paths; delegated SubjectAccessReview later.
