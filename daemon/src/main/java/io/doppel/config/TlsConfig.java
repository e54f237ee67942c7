package io.doppel.config;

import java.nio.file.Path;

/**
 * The node's X.509 material from {@code [node]}: its certificate chain and private key (PEM, PKCS#8) and
 * the CA that signs its peers' and clients' certificates. Paths are null when not configured; the files
 * are read when a listener that needs them starts.
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
