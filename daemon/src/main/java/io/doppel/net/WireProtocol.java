package io.doppel.net;

import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32C;

/**
 * Wire protocol v1 constants and the frame envelope. Byte layouts are in {@code docs/protocol.md};
 * offsets here follow from the sums of their parts. All integers are big-endian (network order).
 *
 * <pre>
 *  0  u32 length    bytes after this field: 8 + body length
 *  4  u32 crc32c    CRC32C of bytes [8, 4 + length)
 *  8  u8  type
 *  9  u8  flags     0 in v1
 * 10  u16 reserved  0 in v1
 * 12  body
 * </pre>
 *
 * Version history: 1 — first version (handshake, hashes for compare, data/zero blocks, acks, heartbeats;
 * FLUSH/FLUSHED were added during v1 development, before any release); 2 — generation identifiers, copy
 * state and a clean flag in HELLO/HELLO_OK, the primary's current generation in SYNC_DONE, so a reconnect
 * resyncs from the dirty map instead of comparing the whole volume; 3 — link authentication: the
 * pre-shared-key challenge–response (AUTH_BEGIN, AUTH_REPLY, AUTH_PROOF, see {@link PskAuth}) before HELLO,
 * and REJECT code 2 (authentication failed). A version-3 node still talks to a version-2 node when no
 * pre-shared key is configured for that peer: the HELLO is unchanged and the versions agree on 2.
 */
public final class WireProtocol
{
    public static final int MAGIC = 0x444F504C; // "DOPL"
    public static final int VERSION_MIN = 2;
    public static final int VERSION_MAX = 4;
    /** The version that introduced the AUTH_* frames (AUTH_BEGIN carries it). */
    public static final int VERSION_AUTH = 3;
    /** The first version with two-way links (role TWO_WAY, VERSION frames). */
    public static final int VERSION_TWO_WAY = 4;

    public static final int LENGTH_FIELD_BYTES = 4;
    public static final int CHECKSUM_BYTES = 4;
    public static final int TYPE_OFFSET = LENGTH_FIELD_BYTES + CHECKSUM_BYTES;
    public static final int HEADER_BYTES = TYPE_OFFSET + 1 + 1 + 2;
    /** The smallest legal value of the length field: checksum + type + flags + reserved. */
    public static final int MIN_LENGTH = HEADER_BYTES - LENGTH_FIELD_BYTES;

    /** Largest block payload in one DATA frame; adjacent blocks are coalesced up to this. */
    public static final int MAX_PAYLOAD_BYTES = 1 << 20;
    /** Largest body of any frame: a DATA header plus a full payload (compression never grows it: raw is sent instead). */
    public static final int MAX_BODY_BYTES = MAX_PAYLOAD_BYTES + 64;
    /** Hard maximum of the length field. Anything larger is refused before it is buffered. */
    public static final int MAX_LENGTH = MIN_LENGTH + MAX_BODY_BYTES;

    public static final int TYPE_HELLO = 1;
    public static final int TYPE_HELLO_OK = 2;
    public static final int TYPE_REJECT = 3;
    public static final int TYPE_HASH_REQUEST = 4;
    public static final int TYPE_HASH_LIST = 5;
    public static final int TYPE_DATA = 6;
    public static final int TYPE_ZERO = 7;
    public static final int TYPE_ACK = 8;
    public static final int TYPE_PING = 9;
    public static final int TYPE_SYNC_BEGIN = 10;
    public static final int TYPE_SYNC_DONE = 11;
    public static final int TYPE_FLUSH = 12;
    public static final int TYPE_FLUSHED = 13;
    public static final int TYPE_AUTH_BEGIN = 14;
    public static final int TYPE_AUTH_REPLY = 15;
    public static final int TYPE_AUTH_PROOF = 16;
    /** Two-way links (v4): the version vector and stamp of the block in the DATA or ZERO frame that follows. */
    public static final int TYPE_VERSION = 17;
    public static final int TYPE_MAX = TYPE_VERSION;

    /** REJECT codes: the handshake was refused (names, sizes, versions, split brain), or authentication failed. */
    public static final int REJECT_HANDSHAKE = 1;
    public static final int REJECT_AUTH = 2;

    /** DATA body: seq u64, offset u64, length u32, codec u8, reserved u8[3], hash 16 bytes, payload. */
    public static final int DATA_HEADER_BYTES = 8 + 8 + 4 + 1 + 3 + 16;
    /** Most hashes one HASH_LIST may carry (16 bytes each, so one list fits a frame). */
    public static final int MAX_HASHES_PER_LIST = MAX_PAYLOAD_BYTES / 16;
    public static final int HASH_BYTES = 16;
    public static final int MAX_NAME_BYTES = 255;

    public static final int ROLE_PRIMARY = 1;
    public static final int ROLE_STANDBY = 2;
    /** Both ends of the link take writes (mode = "two-way"). */
    public static final int ROLE_TWO_WAY = 3;

    private WireProtocol()
    {
    }

    public static String typeName(final int type)
    {
        switch (type)
        {
            case TYPE_HELLO: return "HELLO";
            case TYPE_HELLO_OK: return "HELLO_OK";
            case TYPE_REJECT: return "REJECT";
            case TYPE_HASH_REQUEST: return "HASH_REQUEST";
            case TYPE_HASH_LIST: return "HASH_LIST";
            case TYPE_DATA: return "DATA";
            case TYPE_ZERO: return "ZERO";
            case TYPE_ACK: return "ACK";
            case TYPE_PING: return "PING";
            case TYPE_SYNC_BEGIN: return "SYNC_BEGIN";
            case TYPE_SYNC_DONE: return "SYNC_DONE";
            case TYPE_FLUSH: return "FLUSH";
            case TYPE_FLUSHED: return "FLUSHED";
            case TYPE_AUTH_BEGIN: return "AUTH_BEGIN";
            case TYPE_AUTH_REPLY: return "AUTH_REPLY";
            case TYPE_AUTH_PROOF: return "AUTH_PROOF";
            case TYPE_VERSION: return "VERSION";
            default: return "0x" + Integer.toHexString(type);
        }
    }

    /** Writes a frame header with placeholders; returns the frame's start index for {@link #endFrame}. */
    public static int beginFrame(final ByteBuf buf, final int type)
    {
        final int start = buf.writerIndex();
        buf.writeInt(0);
        buf.writeInt(0);
        buf.writeByte(type);
        buf.writeByte(0);
        buf.writeShort(0);
        return start;
    }

    /** Patches the length and checksum of the frame that starts at {@code start}. */
    public static void endFrame(final ByteBuf buf, final int start, final CRC32C crc)
    {
        final int length = buf.writerIndex() - start - LENGTH_FIELD_BYTES;
        buf.setInt(start, length);
        buf.setInt(start + LENGTH_FIELD_BYTES, checksum(buf, start + TYPE_OFFSET, length - CHECKSUM_BYTES, crc));
    }

    /**
     * CRC32C of {@code buf[index, index+length)}. Reads through the buffer's array or its internal NIO view
     * (no allocation per frame; {@code nioBuffer} would make two ByteBuffer objects each call), so it must
     * run on the thread that owns {@code buf}, as every caller does, and no other thread may use that view:
     * the frame decoder checks frames this way on the I/O loop while the standby's apply thread still reads
     * earlier slices of the same read buffer (which is why {@code BlockApplier} copies by address).
     */
    public static int checksum(final ByteBuf buf, final int index, final int length, final CRC32C crc)
    {
        crc.reset();
        if (buf.hasArray())
        {
            crc.update(buf.array(), buf.arrayOffset() + index, length);
        }
        else if (buf.nioBufferCount() == 1)
        {
            crc.update(buf.internalNioBuffer(index, length));
        }
        else
        {
            for (final java.nio.ByteBuffer part : buf.nioBuffers(index, length))
            {
                crc.update(part);
            }
        }
        return (int)crc.getValue();
    }

    /** A PING frame (body: the sender's nanoTime), for the writer-idle side of the heartbeat. */
    public static ByteBuf ping(final io.netty.buffer.ByteBufAllocator alloc, final CRC32C crc)
    {
        return seqFrame(alloc, TYPE_PING, System.nanoTime(), crc);
    }

    /** A frame whose body is one u64 (ACK, FLUSHED, SYNC_BEGIN, SYNC_DONE, FLUSH, PING). */
    public static ByteBuf seqFrame(final io.netty.buffer.ByteBufAllocator alloc, final int type, final long value,
        final CRC32C crc)
    {
        final ByteBuf buf = alloc.buffer(HEADER_BYTES + 8);
        final int start = beginFrame(buf, type);
        buf.writeLong(value);
        endFrame(buf, start, crc);
        return buf;
    }

    /** Reads a frame's type and steps past flags and reserved; the reader index is then on the body. */
    public static int readType(final ByteBuf frame)
    {
        final int type = frame.readUnsignedByte();
        frame.skipBytes(3);
        return type;
    }

    /** Bytes of a frame on the wire, given the frame as the decoder emits it (reader index on the type). */
    public static int wireBytes(final ByteBuf frame)
    {
        return TYPE_OFFSET + frame.readableBytes();
    }

    /** Fails unless at least {@code bytes} of body remain. */
    public static void requireBody(final ByteBuf body, final int bytes, final int type)
    {
        if (body.readableBytes() < bytes)
        {
            throw new ProtocolException(typeName(type) + " frame: truncated body, " + body.readableBytes()
                + " bytes (expected " + bytes + ")");
        }
    }

    public static void writeName(final ByteBuf buf, final String name)
    {
        final byte[] bytes = name.getBytes(StandardCharsets.UTF_8);
        if (bytes.length > MAX_NAME_BYTES)
        {
            throw new IllegalArgumentException("name \"" + name + "\" is " + bytes.length + " bytes; at most "
                + MAX_NAME_BYTES);
        }
        buf.writeShort(bytes.length);
        buf.writeBytes(bytes);
    }

    public static String readName(final ByteBuf buf, final String what)
    {
        if (buf.readableBytes() < 2)
        {
            throw new ProtocolException(what + ": truncated name length");
        }
        final int length = buf.readUnsignedShort();
        if (length > MAX_NAME_BYTES || length > buf.readableBytes())
        {
            throw new ProtocolException(what + ": name length " + length + " (expected 0-"
                + Math.min(MAX_NAME_BYTES, buf.readableBytes()) + ")");
        }
        return buf.readCharSequence(length, StandardCharsets.UTF_8).toString();
    }
}
