//! Authentication: who is making the request (client certs; front proxy and tokens later).
