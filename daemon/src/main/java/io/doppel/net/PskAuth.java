package io.doppel.net;

import io.netty.buffer.ByteBuf;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.zip.CRC32C;

/**
 * The pre-shared-key challenge–response of protocol version 3, run before HELLO. The key never crosses the
 * wire; each side proves it holds it by an HMAC-SHA256 over both sides' fresh nonces, both node names and a
 * direction label:
 *
 * <pre>
 * client → AUTH_BEGIN  version u16 | method u8 (1) | reserved u8 | client nonce 32 | client name | server name
 * server → AUTH_REPLY  method u8 (1) | reserved u8[3] | server nonce 32 | server proof 32
 * client → AUTH_PROOF  client proof 32
 * proof = HMAC-SHA256(key, label | u16 len + client name | u16 len + server name | client nonce | server nonce)
 * label = "doppel-psk-v3 server" or "doppel-psk-v3 client" (ASCII)
 * </pre>
 *
 * A recorded exchange is useless again: the other side's nonce is new each time. The labels keep a proof
 * from being reflected back in the other direction. Proofs are compared in constant time.
 */
public final class PskAuth
{
    public static final int METHOD_HMAC_SHA256 = 1;
    public static final int NONCE_BYTES = 32;
    public static final int PROOF_BYTES = 32;
    public static final String SERVER_LABEL = "doppel-psk-v3 server";
    public static final String CLIENT_LABEL = "doppel-psk-v3 client";

    private static final SecureRandom RANDOM = new SecureRandom();

    private PskAuth()
    {
    }

    public static byte[] nonce()
    {
        final byte[] n = new byte[NONCE_BYTES];
        RANDOM.nextBytes(n);
        return n;
    }

    /** The proof one side sends ({@code label}: {@link #SERVER_LABEL} or {@link #CLIENT_LABEL}). */
    public static byte[] proof(final byte[] key, final String label, final String clientName, final String serverName,
        final byte[] clientNonce, final byte[] serverNonce)
    {
        try
        {
            final Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            mac.update(label.getBytes(StandardCharsets.US_ASCII));
            lengthPrefixed(mac, clientName);
            lengthPrefixed(mac, serverName);
            mac.update(clientNonce);
            mac.update(serverNonce);
            return mac.doFinal();
        }
        catch (final GeneralSecurityException e)
        {
            throw new IllegalStateException("HmacSHA256 unavailable: " + e, e);
        }
    }

    /** Constant-time comparison of a received proof with the expected one. */
    public static boolean matches(final byte[] expected, final byte[] received)
    {
        return MessageDigest.isEqual(expected, received);
    }

    private static void lengthPrefixed(final Mac mac, final String s)
    {
        final byte[] b = s.getBytes(StandardCharsets.UTF_8);
        mac.update((byte)(b.length >>> 8));
        mac.update((byte)b.length);
        mac.update(b);
    }

    /** AUTH_BEGIN, decoded. */
    public record Begin(int version, int method, byte[] clientNonce, String client, String server)
    {
    }

    /** AUTH_REPLY, decoded. */
    public record Reply(int method, byte[] serverNonce, byte[] serverProof)
    {
    }

    public static void encodeBegin(final ByteBuf buf, final byte[] clientNonce, final String client, final String server,
        final CRC32C crc)
    {
        final int start = WireProtocol.beginFrame(buf, WireProtocol.TYPE_AUTH_BEGIN);
        buf.writeShort(WireProtocol.VERSION_AUTH);
        buf.writeByte(METHOD_HMAC_SHA256);
        buf.writeByte(0);
        buf.writeBytes(clientNonce);
        WireProtocol.writeName(buf, client);
        WireProtocol.writeName(buf, server);
        WireProtocol.endFrame(buf, start, crc);
    }

    public static Begin decodeBegin(final ByteBuf body)
    {
        WireProtocol.requireBody(body, 4 + NONCE_BYTES, WireProtocol.TYPE_AUTH_BEGIN);
        final int version = body.readUnsignedShort();
        final int method = body.readUnsignedByte();
        body.skipBytes(1);
        final byte[] nonce = new byte[NONCE_BYTES];
        body.readBytes(nonce);
        return new Begin(version, method, nonce, WireProtocol.readName(body, "AUTH_BEGIN client"),
            WireProtocol.readName(body, "AUTH_BEGIN server"));
    }

    public static void encodeReply(final ByteBuf buf, final byte[] serverNonce, final byte[] proof, final CRC32C crc)
    {
        final int start = WireProtocol.beginFrame(buf, WireProtocol.TYPE_AUTH_REPLY);
        buf.writeByte(METHOD_HMAC_SHA256);
        buf.writeZero(3);
        buf.writeBytes(serverNonce);
        buf.writeBytes(proof);
        WireProtocol.endFrame(buf, start, crc);
    }

    public static Reply decodeReply(final ByteBuf body)
    {
        WireProtocol.requireBody(body, 4 + NONCE_BYTES + PROOF_BYTES, WireProtocol.TYPE_AUTH_REPLY);
        final int method = body.readUnsignedByte();
        body.skipBytes(3);
        final byte[] nonce = new byte[NONCE_BYTES];
        body.readBytes(nonce);
        final byte[] proof = new byte[PROOF_BYTES];
        body.readBytes(proof);
        return new Reply(method, nonce, proof);
    }

    public static void encodeProof(final ByteBuf buf, final byte[] proof, final CRC32C crc)
    {
        final int start = WireProtocol.beginFrame(buf, WireProtocol.TYPE_AUTH_PROOF);
        buf.writeBytes(proof);
        WireProtocol.endFrame(buf, start, crc);
    }

    public static byte[] decodeProof(final ByteBuf body)
    {
        WireProtocol.requireBody(body, PROOF_BYTES, WireProtocol.TYPE_AUTH_PROOF);
        final byte[] proof = new byte[PROOF_BYTES];
        body.readBytes(proof);
        return proof;
    }
}
