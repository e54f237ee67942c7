package io.doppel.config;

import java.nio.file.Path;

/**
 * The node's X.509 material from {@code [node]}: its certificate chain and private key (PEM, PKCS#8) and
 * the CA that signs its peers' and clients' certificates. Paths are null when not configured. When
 * configured, every peer link of the node runs mutual TLS with it ({@code io.doppel.net.LinkSecurity}), and
 * NBD offers it per {@code nbd-tls}; the loader parses the files once so a bad one is a config error.
 */
public record TlsConfig(Path cert, Path key, Path ca)
{
    public static final TlsConfig NONE = new TlsConfig(null, null, null);

    /** True when a certificate and its key are configured. */
    public boolean configured()
    {
        return cert != null && key != null;
    }
}
