package io.doppel.net;

import io.doppel.config.NodeConfig;
import io.doppel.config.PeerConfig;
import io.netty.buffer.ByteBufAllocator;
import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.NotSslRecordException;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslHandler;

import javax.net.ssl.SSLException;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import java.util.concurrent.atomic.LongAdder;

/**
 * How this node's peer links are secured, for both ends: the TLS contexts built from {@code [node].tls-*}
 * (null when TLS is off), the pre-shared keys of the configured peers, and the count of refused
 * authentications by reason ({@code doppel_link_auth_failures_total}). Peers are read through a supplier on
 * every connection, so a peer added by a live reload can connect at once.
 */
public final class LinkSecurity
{
    /** Reasons a link fails authentication (the counter's {@code reason} tag). */
    public static final List<String> REASONS = List.of("psk", "missing-auth", "certificate", "fingerprint", "identity",
        "plaintext", "tls", "refused-by-peer");

    private final String node;
    private final TlsMaterial tls;
    private final Supplier<List<PeerConfig>> peers;
    private final PeerTrust serverTrust;
    private final SslContext serverContext;
    private final Map<String, LongAdder> failures = new LinkedHashMap<>();

    private LinkSecurity(final String node, final TlsMaterial tls, final Supplier<List<PeerConfig>> peers)
        throws SSLException
    {
        this.node = node;
        this.tls = tls;
        this.peers = peers;
        REASONS.forEach(r -> failures.put(r, new LongAdder()));
        if (tls != null)
        {
            serverTrust = new PeerTrust(tls.caTrust(), this::peer, null);
            serverContext = tls.serverContext(serverTrust, ClientAuth.REQUIRE);
        }
        else
        {
            serverTrust = null;
            serverContext = null;
        }
    }

    public static LinkSecurity create(final NodeConfig node, final Supplier<List<PeerConfig>> peers) throws IOException
    {
        return new LinkSecurity(node.name(), !node.tls().configured() ? null : TlsMaterial.load(node.tls()), peers);
    }

    public String node()
    {
        return node;
    }

    /** The configured peer of that node name, or null. */
    public PeerConfig peer(final String name)
    {
        for (final PeerConfig p : peers.get())
        {
            if (p.name().equals(name))
            {
                return p;
            }
        }
        return null;
    }

    public boolean tls()
    {
        return tls != null;
    }

    /** A handler for an accepted peer link (TLS on). */
    public SslHandler serverHandler(final ByteBufAllocator alloc)
    {
        return serverContext.newHandler(alloc);
    }

    /** The trust of the accepting side (TLS on): which configured peer a client certificate belongs to. */
    public PeerTrust serverTrust()
    {
        return serverTrust;
    }

    /** A client context for links to {@code peer} (TLS on); it accepts only that peer's certificate. */
    public SslContext clientContext(final PeerConfig peer) throws SSLException
    {
        return tls.clientContext(new PeerTrust(tls.caTrust(), this::peer, peer.name()));
    }

    /** Counts a refused authentication. */
    public void failed(final String reason)
    {
        failures.getOrDefault(reason, failures.get("tls")).increment();
    }

    public long failures(final String reason)
    {
        final LongAdder a = failures.get(reason);
        return a == null ? 0 : a.sum();
    }

    /** The counter reason of a failed TLS handshake. */
    public static String reasonOf(final Throwable failure)
    {
        final LinkAuthException auth = LinkAuthException.in(failure);
        if (auth != null)
        {
            return auth.reason();
        }
        for (Throwable c = failure; c != null; c = c.getCause())
        {
            if (c instanceof NotSslRecordException)
            {
                return "plaintext";
            }
            if (c.getMessage() != null && c.getMessage().contains("Received fatal alert"))
            {
                return "refused-by-peer";
            }
            if (c.getCause() == c)
            {
                break;
            }
        }
        return "tls";
    }

    /** Words for a failed TLS handshake, for a log line. */
    public static String describe(final Throwable failure)
    {
        final LinkAuthException auth = LinkAuthException.in(failure);
        if (auth != null)
        {
            return auth.getMessage();
        }
        if ("plaintext".equals(reasonOf(failure)))
        {
            return "not TLS: the peer sent plaintext to a TLS port (is [node].tls-* set on both nodes?)";
        }
        Throwable root = failure;
        while (root.getCause() != null && root.getCause() != root)
        {
            root = root.getCause();
        }
        return "TLS handshake failed: " + root.getMessage();
    }
}
