package io.doppel.config;

import java.net.InetSocketAddress;
import java.nio.file.Path;

/**
 * The {@code [node]} table: this daemon's identity and its listening addresses. {@code adminTokenFile} is
 * where the admin token lives ({@code <data-dir>/admin.token} unless set).
 */
public record NodeConfig(String name, InetSocketAddress listen, InetSocketAddress admin, Path dataDir,
    long heartbeatIntervalMillis, long heartbeatTimeoutMillis, String logLevel, TlsConfig tls, NbdTlsMode nbdTls,
    Path adminTokenFile)
{
    public static final String DEFAULT_ADMIN_TOKEN_FILE_NAME = "admin.token";

    /** Without TLS material, NBD in plaintext, the admin token in {@code <data-dir>/admin.token}. */
    public NodeConfig(final String name, final InetSocketAddress listen, final InetSocketAddress admin,
        final Path dataDir, final long heartbeatIntervalMillis, final long heartbeatTimeoutMillis, final String logLevel)
    {
        this(name, listen, admin, dataDir, heartbeatIntervalMillis, heartbeatTimeoutMillis, logLevel, TlsConfig.NONE,
            NbdTlsMode.OFF, dataDir.resolve(DEFAULT_ADMIN_TOKEN_FILE_NAME));
    }

    public static final String DEFAULT_LISTEN = "127.0.0.1:7788";
    public static final String DEFAULT_ADMIN = "127.0.0.1:7790";
    public static final String DEFAULT_DATA_DIR = "/var/lib/doppel";
    public static final String DEFAULT_HEARTBEAT_INTERVAL = "1s";
    public static final String DEFAULT_HEARTBEAT_TIMEOUT = "10s";
    public static final String DEFAULT_LOG_LEVEL = "info";
}
