package io.doppel.net;

import io.doppel.config.PeerConfig;
import io.doppel.log.Log;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslHandshakeCompletionEvent;

import javax.net.ssl.SSLPeerUnverifiedException;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.zip.CRC32C;

/**
 * The accepting side's guard on a peer link, on the I/O loop between the frame decoder and the volume's
 * handler: no frame passes until the peer has proved who it is, and the HELLO it then sends must name that
 * same node. It runs the pre-shared-key exchange ({@link PskAuth}) when the peer starts one, takes the
 * identity of a TLS client certificate, refuses a plaintext HELLO from a peer that has a {@code psk-file},
 * and on any failure logs why, counts it, answers REJECT (code 2) where the link still carries frames, and
 * closes the connection. Once the HELLO is through it removes itself.
 */
public final class PeerAuthGate extends ChannelInboundHandlerAdapter
{
    private final LinkSecurity security;
    private final String component;
    private final CRC32C crc = new CRC32C();
    /** The node proved by PSK (null until then) and the nonces of the exchange in progress. */
    private String pskPeer;
    private PskAuth.Begin begin;
    private byte[] serverNonce;
    private boolean refused;

    public PeerAuthGate(final LinkSecurity security)
    {
        this.security = security;
        this.component = security.node() + "/peers";
    }

    @Override
    public void userEventTriggered(final ChannelHandlerContext ctx, final Object evt)
    {
        if (evt instanceof SslHandshakeCompletionEvent && !((SslHandshakeCompletionEvent)evt).isSuccess())
        {
            final Throwable cause = ((SslHandshakeCompletionEvent)evt).cause();
            refuse(ctx, LinkSecurity.reasonOf(cause), LinkSecurity.describe(cause), false);
            return;
        }
        ctx.fireUserEventTriggered(evt);
    }

    @Override
    public void exceptionCaught(final ChannelHandlerContext ctx, final Throwable cause)
    {
        if (refused)
        {
            return; // the refusal is logged; what the TLS layer throws after it says the same
        }
        if (security.tls() && !tlsDone(ctx))
        {
            refuse(ctx, LinkSecurity.reasonOf(cause), LinkSecurity.describe(cause), false);
            return;
        }
        ctx.fireExceptionCaught(cause);
    }

    @Override
    public void channelRead(final ChannelHandlerContext ctx, final Object msg)
    {
        final ByteBuf frame = (ByteBuf)msg;
        if (refused)
        {
            frame.release();
            return;
        }
        final int start = frame.readerIndex();
        boolean pass = false;
        try
        {
            final int type = WireProtocol.readType(frame);
            switch (type)
            {
                case WireProtocol.TYPE_PING:
                    break;
                case WireProtocol.TYPE_AUTH_BEGIN:
                    onBegin(ctx, PskAuth.decodeBegin(frame));
                    break;
                case WireProtocol.TYPE_AUTH_PROOF:
                    onProof(ctx, PskAuth.decodeProof(frame));
                    break;
                case WireProtocol.TYPE_HELLO:
                    pass = onHello(ctx, Hello.decode(frame.duplicate()));
                    break;
                case WireProtocol.TYPE_REJECT:
                    // the dialling peer refused this node: during the PSK exchange, our proof of the key
                    final boolean auth = Hello.rejectCode(frame) == WireProtocol.REJECT_AUTH;
                    refuse(ctx, auth && begin != null ? "psk" : "refused-by-peer", "peer " + (begin != null
                        ? begin.client() + " " : "") + "refused this node: " + Hello.decodeReject(frame), false);
                    break;
                default:
                    // not a peer that authenticates differently: a broken or hostile one; no answer
                    refuse(ctx, "missing-auth", "sent " + WireProtocol.typeName(type) + " before authenticating"
                        + " (expected AUTH_BEGIN or HELLO)", false);
            }
        }
        catch (final ProtocolException e)
        {
            refuse(ctx, "missing-auth", "bad authentication frame: " + e.getMessage(), true);
        }
        finally
        {
            if (pass)
            {
                frame.readerIndex(start);
            }
            else
            {
                frame.release();
            }
        }
        if (pass)
        {
            ctx.pipeline().remove(this);
            ctx.fireChannelRead(frame);
        }
    }

    private void onBegin(final ChannelHandlerContext ctx, final PskAuth.Begin b)
    {
        if (begin != null)
        {
            refuse(ctx, "psk", "sent AUTH_BEGIN twice", true);
            return;
        }
        final PeerConfig peer = security.peer(b.client());
        if (peer == null)
        {
            refuse(ctx, "identity", "node \"" + b.client() + "\" is no configured [[peer]]", true);
            return;
        }
        if (!b.server().equals(security.node()))
        {
            refuse(ctx, "identity", "peer " + b.client() + " wanted node \"" + b.server() + "\", this is \""
                + security.node() + "\"", true);
            return;
        }
        final String tlsPeer = tlsPeer(ctx);
        if (security.tls() && !b.client().equals(tlsPeer))
        {
            refuse(ctx, "identity", "AUTH_BEGIN says node \"" + b.client() + "\", its TLS certificate is of \""
                + tlsPeer + "\"", true);
            return;
        }
        if (peer.psk() == null)
        {
            refuse(ctx, "psk", "peer " + peer.name() + " offers a pre-shared key, but [[peer " + peer.name()
                + "]] has no psk-file here", true);
            return;
        }
        if (b.method() != PskAuth.METHOD_HMAC_SHA256)
        {
            refuse(ctx, "psk", "peer " + peer.name() + " uses authentication method " + b.method() + " (expected "
                + PskAuth.METHOD_HMAC_SHA256 + ", HMAC-SHA256)", true);
            return;
        }
        begin = b;
        serverNonce = PskAuth.nonce();
        final byte[] proof = PskAuth.proof(peer.psk().bytes(), PskAuth.SERVER_LABEL, b.client(), security.node(),
            b.clientNonce(), serverNonce);
        final ByteBuf reply = ctx.alloc().buffer();
        PskAuth.encodeReply(reply, serverNonce, proof, crc);
        ctx.writeAndFlush(reply, ctx.voidPromise());
    }

    private void onProof(final ChannelHandlerContext ctx, final byte[] proof)
    {
        if (begin == null || pskPeer != null)
        {
            refuse(ctx, "psk", "sent AUTH_PROOF out of turn", true);
            return;
        }
        final PeerConfig peer = security.peer(begin.client());
        final byte[] expected = peer == null || peer.psk() == null ? null : PskAuth.proof(peer.psk().bytes(),
            PskAuth.CLIENT_LABEL, begin.client(), security.node(), begin.clientNonce(), serverNonce);
        if (expected == null || !PskAuth.matches(expected, proof))
        {
            refuse(ctx, "psk", "peer " + begin.client() + " failed the pre-shared-key challenge: wrong key"
                + " (compare both nodes' [[peer]].psk-file)", true);
            return;
        }
        pskPeer = begin.client();
    }

    private boolean onHello(final ChannelHandlerContext ctx, final Hello hello)
    {
        if (begin != null && pskPeer == null)
        {
            refuse(ctx, "psk", "sent HELLO before AUTH_PROOF", true);
            return false;
        }
        if (pskPeer != null && !pskPeer.equals(hello.node()))
        {
            refuse(ctx, "identity", "authenticated as \"" + pskPeer + "\", but its HELLO says \"" + hello.node() + "\"",
                true);
            return false;
        }
        final String tlsPeer = tlsPeer(ctx);
        if (security.tls() && !hello.node().equals(tlsPeer))
        {
            refuse(ctx, "identity", "its TLS certificate is of \"" + tlsPeer + "\", but its HELLO says \""
                + hello.node() + "\"", true);
            return false;
        }
        final PeerConfig peer = security.peer(hello.node());
        if (pskPeer == null && peer != null && peer.psk() != null)
        {
            refuse(ctx, "missing-auth", "peer " + peer.name() + " skipped the pre-shared-key challenge, but [[peer "
                + peer.name() + "]] has a psk-file here (is psk-file set on both nodes?)", true);
            return false;
        }
        return true;
    }

    /** The configured peer named by the TLS client certificate, or null. */
    private String tlsPeer(final ChannelHandlerContext ctx)
    {
        final SslHandler ssl = ctx.pipeline().get(SslHandler.class);
        if (ssl == null)
        {
            return null;
        }
        try
        {
            final Certificate[] chain = ssl.engine().getSession().getPeerCertificates();
            final PeerConfig p = chain.length == 0 ? null : security.serverTrust().peerOf((X509Certificate)chain[0]);
            return p == null ? null : p.name();
        }
        catch (final SSLPeerUnverifiedException e)
        {
            return null;
        }
    }

    private static boolean tlsDone(final ChannelHandlerContext ctx)
    {
        final SslHandler ssl = ctx.pipeline().get(SslHandler.class);
        return ssl != null && ssl.handshakeFuture().isSuccess();
    }

    private void refuse(final ChannelHandlerContext ctx, final String reason, final String why, final boolean reply)
    {
        if (refused)
        {
            return;
        }
        refused = true;
        security.failed(reason);
        Log.warn(component, "refused a peer link from " + ctx.channel().remoteAddress() + " (" + reason + "): " + why);
        if (reply && ctx.channel().isActive())
        {
            final ByteBuf reject = ctx.alloc().buffer();
            Hello.encodeReject(reject, WireProtocol.REJECT_AUTH, "authentication failed: " + why, crc);
            ctx.writeAndFlush(reject).addListener(ChannelFutureListener.CLOSE);
        }
        else
        {
            ctx.close();
        }
    }
}
