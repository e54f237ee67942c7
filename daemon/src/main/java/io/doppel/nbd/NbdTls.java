package io.doppel.nbd;

import io.doppel.config.NbdTlsMode;
import io.doppel.config.TlsConfig;
import io.doppel.net.TlsMaterial;
import io.netty.buffer.ByteBufAllocator;
import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslHandler;

import java.io.IOException;

/**
 * TLS for NBD clients ({@code NBD_OPT_STARTTLS}, x509 as QEMU's {@code tls-creds-x509} and nbdkit use it):
 * the server presents the node's certificate and requires a client certificate signed by the node's CA,
 * so only hosts the operator issued a certificate to can open a disk. TLS 1.3 or 1.2 only.
 */
public final class NbdTls
{
    private final NbdTlsMode mode;
    private final SslContext context;

    private NbdTls(final NbdTlsMode mode, final SslContext context)
    {
        this.mode = mode;
        this.context = context;
    }

    /** Null when the mode is off; otherwise loads the PEM files, failing with a message naming the bad one. */
    public static NbdTls create(final NbdTlsMode mode, final TlsConfig tls) throws IOException
    {
        if (mode == null || mode == NbdTlsMode.OFF)
        {
            return null;
        }
        try
        {
            // the same PEM loading, protocols and CA trust as the peer links
            final TlsMaterial material = TlsMaterial.load(tls);
            return new NbdTls(mode, material.serverContext(material.caTrust(), ClientAuth.REQUIRE));
        }
        catch (final IOException | RuntimeException e)
        {
            throw new IOException("[node].nbd-tls=\"" + mode.configName() + "\": cannot load tls-cert=\"" + tls.cert()
                + "\", tls-key=\"" + tls.key() + "\", tls-ca=\"" + tls.ca() + "\" (expected PEM: a certificate chain,"
                + " an unencrypted PKCS#8 key, CA certificates): " + rootMessage(e), e);
        }
    }

    public boolean required()
    {
        return mode == NbdTlsMode.REQUIRE;
    }

    SslHandler newHandler(final ByteBufAllocator alloc)
    {
        return context.newHandler(alloc);
    }

    private static String rootMessage(final Throwable e)
    {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t)
        {
            t = t.getCause();
        }
        return t == e ? String.valueOf(e.getMessage()) : e.getMessage() + " (" + t.getMessage() + ")";
    }
}
