//! The HTTPS image-API shim in front of kube-apiserver.
