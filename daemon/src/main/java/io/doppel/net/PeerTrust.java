package io.doppel.net;

import io.doppel.config.PeerConfig;

import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedTrustManager;
import java.net.Socket;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.cert.CertificateEncodingException;
import java.security.cert.CertificateException;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;
import javax.naming.InvalidNameException;
import javax.naming.ldap.LdapName;
import javax.naming.ldap.Rdn;

/**
 * Decides whether a peer's certificate belongs to a configured peer. A certificate is accepted when
 * <ol>
 * <li>its identity is a configured peer: the subject's CN or one of its DNS subject alternative names equals
 *     the peer's node name ({@code [[peer]].name}); a client's certificate picks the peer, a server's must
 *     name the peer this node dialled;</li>
 * <li>it chains to {@code [node].tls-ca}, when a CA is configured; and</li>
 * <li>its SHA-256 fingerprint equals that peer's {@code tls-fingerprint}, when one is pinned.</li>
 * </ol>
 * Host names and IP addresses are not checked: peers are identified by node name, not by where they are.
 */
public final class PeerTrust extends X509ExtendedTrustManager
{
    private final X509ExtendedTrustManager ca;
    private final Function<String, PeerConfig> peers;
    private final String expectedPeer;

    /**
     * @param ca           PKIX trust in the configured CA, or null (then every peer must be pinned)
     * @param peers        the configured peer of a node name, or null; read per handshake, so a reload applies
     * @param expectedPeer the peer dialled (client side), or null on the accepting side
     */
    public PeerTrust(final X509ExtendedTrustManager ca, final Function<String, PeerConfig> peers,
        final String expectedPeer)
    {
        this.ca = ca;
        this.peers = peers;
        this.expectedPeer = expectedPeer;
    }

    /** The names a certificate claims: subject CN, then DNS subject alternative names. */
    public static List<String> names(final X509Certificate cert)
    {
        final java.util.Set<String> names = new java.util.LinkedHashSet<>();
        try
        {
            for (final Rdn rdn : new LdapName(cert.getSubjectX500Principal().getName()).getRdns())
            {
                if ("CN".equalsIgnoreCase(rdn.getType()))
                {
                    names.add(rdn.getValue().toString());
                }
            }
        }
        catch (final InvalidNameException e)
        {
            // no usable subject: SANs may still name it
        }
        try
        {
            if (cert.getSubjectAlternativeNames() != null)
            {
                for (final List<?> san : cert.getSubjectAlternativeNames())
                {
                    if (((Integer)san.get(0)) == 2) // dNSName
                    {
                        names.add(san.get(1).toString());
                    }
                }
            }
        }
        catch (final CertificateParsingException e)
        {
            // unreadable SANs: the CN may still name it
        }
        return new ArrayList<>(names);
    }

    /** SHA-256 of the certificate's DER encoding, lowercase hex without colons. */
    public static String fingerprint(final X509Certificate cert)
    {
        try
        {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(cert.getEncoded()));
        }
        catch (final NoSuchAlgorithmException | CertificateEncodingException e)
        {
            throw new IllegalStateException(e);
        }
    }

    /** The configured peer {@code cert} names (first match), or null. */
    public PeerConfig peerOf(final X509Certificate cert)
    {
        for (final String name : names(cert))
        {
            final PeerConfig p = peers.apply(name);
            if (p != null)
            {
                return p;
            }
        }
        return null;
    }

    private void check(final X509Certificate[] chain, final String authType, final boolean client)
        throws CertificateException
    {
        if (chain == null || chain.length == 0)
        {
            throw new LinkAuthException("certificate", "the peer presented no certificate");
        }
        final X509Certificate leaf = chain[0];
        final String subject = leaf.getSubjectX500Principal().getName() + " " + names(leaf);
        final PeerConfig peer;
        if (expectedPeer != null)
        {
            peer = peers.apply(expectedPeer);
            if (peer == null || !names(leaf).contains(expectedPeer))
            {
                throw new LinkAuthException("identity", "certificate " + subject + " does not name peer \""
                    + expectedPeer + "\" (its CN or a DNS subject alternative name must equal the node name)");
            }
        }
        else
        {
            peer = peerOf(leaf);
            if (peer == null)
            {
                throw new LinkAuthException("identity", "certificate " + subject + " names no configured [[peer]] (its"
                    + " CN or a DNS subject alternative name must equal a peer's node name)");
            }
        }
        if (ca != null)
        {
            try
            {
                if (client)
                {
                    ca.checkClientTrusted(chain, authType);
                }
                else
                {
                    ca.checkServerTrusted(chain, authType);
                }
            }
            catch (final CertificateException e)
            {
                throw new LinkAuthException("certificate", "certificate " + subject + " of peer " + peer.name()
                    + " is not trusted by [node].tls-ca: " + e.getMessage());
            }
        }
        if (peer.tlsFingerprint() != null)
        {
            final String actual = fingerprint(leaf);
            if (!MessageDigest.isEqual(actual.getBytes(), peer.tlsFingerprint().toLowerCase(Locale.ROOT).getBytes()))
            {
                throw new LinkAuthException("fingerprint", "certificate of peer " + peer.name() + " has SHA-256 "
                    + actual + ", but [[peer " + peer.name() + "]].tls-fingerprint pins " + peer.tlsFingerprint());
            }
        }
        else if (ca == null)
        {
            throw new LinkAuthException("certificate", "no [node].tls-ca and no tls-fingerprint for peer "
                + peer.name() + ": nothing to trust its certificate by");
        }
    }

    @Override
    public void checkClientTrusted(final X509Certificate[] chain, final String authType) throws CertificateException
    {
        check(chain, authType, true);
    }

    @Override
    public void checkServerTrusted(final X509Certificate[] chain, final String authType) throws CertificateException
    {
        check(chain, authType, false);
    }

    @Override
    public void checkClientTrusted(final X509Certificate[] chain, final String authType, final Socket socket)
        throws CertificateException
    {
        check(chain, authType, true);
    }

    @Override
    public void checkServerTrusted(final X509Certificate[] chain, final String authType, final Socket socket)
        throws CertificateException
    {
        check(chain, authType, false);
    }

    @Override
    public void checkClientTrusted(final X509Certificate[] chain, final String authType, final SSLEngine engine)
        throws CertificateException
    {
        check(chain, authType, true);
    }

    @Override
    public void checkServerTrusted(final X509Certificate[] chain, final String authType, final SSLEngine engine)
        throws CertificateException
    {
        check(chain, authType, false);
    }

    @Override
    public X509Certificate[] getAcceptedIssuers()
    {
        // None named: a client then always presents its certificate, and a certificate of the wrong CA is
        // refused here with a reason rather than by the JDK as an empty chain.
        return new X509Certificate[0];
    }
}
