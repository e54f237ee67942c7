package io.doppel.replication;

import io.doppel.config.NodeConfig;
import io.doppel.config.PeerConfig;
import io.doppel.net.Hello;
import io.doppel.net.LinkSecurity;
import io.doppel.net.PskAuth;
import io.doppel.net.WireProtocol;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;

import java.util.zip.CRC32C;

/**
 * The connecting side's authentication of a peer link, shared by one-way senders and two-way links: the
 * TLS handshake's outcome, then the pre-shared-key challenge and response before any HELLO.
 */
final class LinkAuthClient
{
    /** Waits for the peer's AUTH_REPLY. */
    @FunctionalInterface
    interface AuthReplies
    {
        PskAuth.Reply await(long millis) throws LinkDownException, PeerRejectedException, InterruptedException;
    }

    private LinkAuthClient()
    {
    }

    /**
     * Proves who this node is and checks who the standby is, before any HELLO: waits for the TLS handshake
     * (the trust manager has then checked the standby's certificate), then runs the pre-shared-key exchange
     * when this peer has a psk-file. A failure on this side is logged by the caller, counted here, and retried
     * slowly, as config must change.
     */
    static void authenticate(final Channel channel, final boolean tls, final NodeConfig node, final PeerConfig peer,
        final LinkSecurity security, final AuthReplies replies, final CRC32C crc)
        throws LinkDownException, PeerRejectedException, InterruptedException
    {
        if (tls)
        {
            final io.netty.handler.ssl.SslHandler ssl = channel.pipeline().get(io.netty.handler.ssl.SslHandler.class);
            if (!ssl.handshakeFuture().await(node.heartbeatTimeoutMillis()))
            {
                throw new LinkDownException("no TLS handshake within " + node.heartbeatTimeoutMillis() + " ms");
            }
            if (!ssl.handshakeFuture().isSuccess())
            {
                final Throwable cause = ssl.handshakeFuture().cause();
                final String reason = LinkSecurity.reasonOf(cause);
                if (cause instanceof java.nio.channels.ClosedChannelException)
                {
                    throw new LinkDownException("closed during the TLS handshake");
                }
                security.failed(reason);
                throw new PeerRejectedException("TLS: " + LinkSecurity.describe(cause) + " (" + reason + ")");
            }
        }
        if (peer.psk() == null)
        {
            return;
        }
        final byte[] key = peer.psk().bytes();
        final byte[] clientNonce = PskAuth.nonce();
        final ByteBuf begin = channel.alloc().buffer();
        PskAuth.encodeBegin(begin, clientNonce, node.name(), peer.name(), crc);
        channel.writeAndFlush(begin);
        final PskAuth.Reply reply = replies.await(node.heartbeatTimeoutMillis());
        final byte[] expected = PskAuth.proof(key, PskAuth.SERVER_LABEL, node.name(), peer.name(), clientNonce,
            reply.serverNonce());
        if (reply.method() != PskAuth.METHOD_HMAC_SHA256 || !PskAuth.matches(expected, reply.serverProof()))
        {
            final String why = "peer " + peer.name() + " failed the pre-shared-key challenge: wrong key (compare both"
                + " nodes' [[peer]].psk-file)";
            final ByteBuf reject = channel.alloc().buffer();
            Hello.encodeReject(reject, WireProtocol.REJECT_AUTH, "authentication failed: " + why, crc);
            channel.writeAndFlush(reject);
            throw new PeerRejectedException(why, true);
        }
        final ByteBuf proof = channel.alloc().buffer();
        PskAuth.encodeProof(proof, PskAuth.proof(key, PskAuth.CLIENT_LABEL, node.name(), peer.name(), clientNonce,
            reply.serverNonce()), crc);
        channel.writeAndFlush(proof);
    }

}
