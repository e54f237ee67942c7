package io.doppel.net;

import io.doppel.config.TlsConfig;
import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;

import javax.net.ssl.SSLException;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedTrustManager;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * A node's TLS identity and trust, loaded from PEM files: its certificate chain, its PKCS#8 private key (RSA,
 * EC or Ed25519) and the CA certificates it trusts. It knows nothing of peers, so the peer link and, later,
 * the NBD listener's STARTTLS build their contexts from the same material with their own trust rules.
 * Only TLS 1.3 and 1.2 are offered; the JDK provider is used, so no native library is needed.
 */
public final class TlsMaterial
{
    /** The protocol versions offered on every doppel TLS connection. */
    public static final String[] PROTOCOLS = {"TLSv1.3", "TLSv1.2"};

    private final X509Certificate[] chain;
    private final PrivateKey key;
    private final X509Certificate[] ca;

    private TlsMaterial(final X509Certificate[] chain, final PrivateKey key, final X509Certificate[] ca)
    {
        this.chain = chain;
        this.key = key;
        this.ca = ca;
    }

    /** Loads the files of {@code tls}; an error names the config key, the file and what was expected. */
    public static TlsMaterial load(final TlsConfig tls) throws IOException
    {
        final X509Certificate[] chain = certificates(tls.cert(), "[node].tls-cert");
        final PrivateKey key = privateKey(tls.key(), "[node].tls-key");
        final X509Certificate[] ca = tls.ca() == null ? new X509Certificate[0] : certificates(tls.ca(), "[node].tls-ca");
        return new TlsMaterial(chain, key, ca);
    }

    public X509Certificate[] chain()
    {
        return chain.clone();
    }

    /** The trusted CA certificates (empty when none are configured). */
    public X509Certificate[] ca()
    {
        return ca.clone();
    }

    /** The JDK's PKIX trust manager over {@link #ca()}, or null when no CA is configured. */
    public X509ExtendedTrustManager caTrust()
    {
        if (ca.length == 0)
        {
            return null;
        }
        try
        {
            final KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
            store.load(null, null);
            for (int i = 0; i < ca.length; i++)
            {
                store.setCertificateEntry("ca" + i, ca[i]);
            }
            final TrustManagerFactory f = TrustManagerFactory.getInstance("PKIX");
            f.init(store);
            for (final TrustManager t : f.getTrustManagers())
            {
                if (t instanceof X509ExtendedTrustManager)
                {
                    return (X509ExtendedTrustManager)t;
                }
            }
            throw new IllegalStateException("the JDK offers no X509 trust manager");
        }
        catch (final GeneralSecurityException | IOException e)
        {
            throw new IllegalStateException("cannot build a trust store from [node].tls-ca: " + e, e);
        }
    }

    /** A server context with this identity; {@code clientAuth} REQUIRE for mutual TLS. */
    public SslContext serverContext(final TrustManager trust, final ClientAuth clientAuth) throws SSLException
    {
        return SslContextBuilder.forServer(key, chain).sslProvider(SslProvider.JDK).protocols(PROTOCOLS)
            .trustManager(trust).clientAuth(clientAuth).build();
    }

    /**
     * A client context presenting this identity. Host-name checks are off: peers are named by node, not by
     * DNS, and {@code trust} checks the peer's identity itself.
     */
    public SslContext clientContext(final TrustManager trust) throws SSLException
    {
        return SslContextBuilder.forClient().sslProvider(SslProvider.JDK).protocols(PROTOCOLS).keyManager(key, chain)
            .trustManager(trust).endpointIdentificationAlgorithm(null).build();
    }

    private static X509Certificate[] certificates(final Path file, final String key) throws IOException
    {
        final byte[] pem = read(file, key);
        final List<X509Certificate> out = new ArrayList<>();
        try
        {
            for (final Certificate c : CertificateFactory.getInstance("X.509")
                .generateCertificates(new ByteArrayInputStream(pem)))
            {
                out.add((X509Certificate)c);
            }
        }
        catch (final CertificateException e)
        {
            throw new IOException(key + "=\"" + file + "\": not a PEM certificate file (" + e.getMessage()
                + "); expected -----BEGIN CERTIFICATE----- blocks");
        }
        if (out.isEmpty())
        {
            throw new IOException(key + "=\"" + file + "\": holds no certificate; expected -----BEGIN CERTIFICATE-----"
                + " blocks");
        }
        return out.toArray(new X509Certificate[0]);
    }

    private static PrivateKey privateKey(final Path file, final String key) throws IOException
    {
        final String text = new String(read(file, key), StandardCharsets.US_ASCII);
        if (text.contains("-----BEGIN RSA PRIVATE KEY-----") || text.contains("-----BEGIN EC PRIVATE KEY-----")
            || text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----"))
        {
            throw new IOException(key + "=\"" + file + "\": a legacy or encrypted key; expected an unencrypted PKCS#8"
                + " key (-----BEGIN PRIVATE KEY-----); convert it with: openssl pkcs8 -topk8 -nocrypt -in OLD -out "
                + file);
        }
        final int begin = text.indexOf("-----BEGIN PRIVATE KEY-----");
        final int end = text.indexOf("-----END PRIVATE KEY-----");
        if (begin < 0 || end < begin)
        {
            throw new IOException(key + "=\"" + file + "\": no -----BEGIN PRIVATE KEY----- block; expected a PEM"
                + " PKCS#8 private key");
        }
        final byte[] der;
        try
        {
            der = Base64.getMimeDecoder().decode(text.substring(begin + 27, end));
        }
        catch (final IllegalArgumentException e)
        {
            throw new IOException(key + "=\"" + file + "\": the PEM block is not valid base64: " + e.getMessage());
        }
        for (final String algorithm : new String[] {"EC", "RSA", "Ed25519", "Ed448", "RSASSA-PSS"})
        {
            try
            {
                return KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(der));
            }
            catch (final GeneralSecurityException e)
            {
                // try the next algorithm
            }
        }
        throw new IOException(key + "=\"" + file + "\": a PKCS#8 key of an algorithm this JVM cannot use; expected"
            + " EC (P-256, P-384), RSA or Ed25519");
    }

    private static byte[] read(final Path file, final String key) throws IOException
    {
        try
        {
            return Files.readAllBytes(file);
        }
        catch (final IOException e)
        {
            throw new IOException(key + "=\"" + file + "\": cannot read: " + e);
        }
    }
}
