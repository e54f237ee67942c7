package io.doppel.net;

import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32C;

/**
 * The handshake frame each side sends once (HELLO from the connecting primary, HELLO_OK in reply).
 *
 * <pre>
 * body: magic u32 | versionMin u16 | versionMax u16 | role u8 | reserved u8[3] | size u64 | blockSize u32
 *       | node name | target name | volume name        (name = u16 length + UTF-8, at most 255 bytes)
 *       | currentGen u64 | bitmapGen u64 | disk u8 | flags u8 | trackingSince u64 | changedBlocks u64
 *                                                                                  (since version 2)
 * </pre>
 *
 * {@code target} is the node the sender believes it is talking to, so a link plugged into the wrong
 * host is refused by both ends. The generation identifiers and the copy's state ({@code disk}: 0 unknown,
 * 1 consistent, 2 inconsistent; flag 1: the sender's copy is in doubt) let the primary choose between a
 * resync from its dirty map and a hash compare, and detect a split brain; when it took writes alone, when
 * that began ({@code trackingSince}, ms) and how many blocks it changed let a split-brain policy pick a side.
 */
public record Hello(int magic, int versionMin, int versionMax, int role, long size, int blockSize, String node,
    String target, String volume, long currentGen, long bitmapGen, int disk, int flags, long trackingSince,
    long changedBlocks)
{
    /** Bytes of the version-2 fields after the names. */
    public static final int GENERATION_BYTES = 34;

    /** Flag: the sender's copy is in doubt (machine crash, or a former primary with writes its peer lacks). */
    public static final int FLAG_UNCLEAN = 1;
    /**
     * Flag (standby): the copy is a blank image this node created and has never synced into: every byte
     * reads zero, so a whole-volume sync can send the primary's non-zero blocks without comparing hashes.
     */
    public static final int FLAG_BLANK = 2;

    public Hello(final int magic, final int versionMin, final int versionMax, final int role, final long size,
        final int blockSize, final String node, final String target, final String volume)
    {
        this(magic, versionMin, versionMax, role, size, blockSize, node, target, volume, 0, 0, 0, 0, 0, 0);
    }

    public static Hello of(final int role, final long size, final int blockSize, final String node,
        final String target, final String volume)
    {
        return new Hello(WireProtocol.MAGIC, WireProtocol.VERSION_MIN, WireProtocol.VERSION_MAX, role, size,
            blockSize, node, target, volume);
    }

    /** This hello with the sender's generation identifiers and copy state. */
    public Hello withGenerations(final long current, final long bitmap, final int diskState, final int helloFlags)
    {
        return new Hello(magic, versionMin, versionMax, role, size, blockSize, node, target, volume, current, bitmap,
            diskState, helloFlags, trackingSince, changedBlocks);
    }

    /** This hello with when the sender started writing alone and how many blocks it changed since. */
    public Hello withChanges(final long since, final long changed)
    {
        return new Hello(magic, versionMin, versionMax, role, size, blockSize, node, target, volume, currentGen,
            bitmapGen, disk, flags, since, changed);
    }

    public void encode(final ByteBuf buf, final int type, final CRC32C crc)
    {
        final int start = WireProtocol.beginFrame(buf, type);
        buf.writeInt(magic);
        buf.writeShort(versionMin);
        buf.writeShort(versionMax);
        buf.writeByte(role);
        buf.writeZero(3);
        buf.writeLong(size);
        buf.writeInt(blockSize);
        WireProtocol.writeName(buf, node);
        WireProtocol.writeName(buf, target);
        WireProtocol.writeName(buf, volume);
        buf.writeLong(currentGen);
        buf.writeLong(bitmapGen);
        buf.writeByte(disk);
        buf.writeByte(flags);
        buf.writeLong(trackingSince);
        buf.writeLong(changedBlocks);
        WireProtocol.endFrame(buf, start, crc);
    }

    /** Decodes a HELLO or HELLO_OK body (reader index just past the frame header). */
    public static Hello decode(final ByteBuf body)
    {
        if (body.readableBytes() < 24)
        {
            throw new ProtocolException("handshake: truncated, " + body.readableBytes() + " bytes (expected at least 24)");
        }
        final int magic = body.readInt();
        if (magic != WireProtocol.MAGIC)
        {
            throw new ProtocolException("handshake: bad magic 0x" + Integer.toHexString(magic) + " (expected 0x"
                + Integer.toHexString(WireProtocol.MAGIC) + ", \"DOPL\"): the peer is not doppel");
        }
        final int versionMin = body.readUnsignedShort();
        final int versionMax = body.readUnsignedShort();
        final int role = body.readUnsignedByte();
        body.skipBytes(3);
        final long size = body.readLong();
        final int blockSize = body.readInt();
        final String node = WireProtocol.readName(body, "handshake node");
        final String target = WireProtocol.readName(body, "handshake target");
        final String volume = WireProtocol.readName(body, "handshake volume");
        if (body.readableBytes() < GENERATION_BYTES)
        {
            if (versionMax >= 2 && versionMin <= WireProtocol.VERSION_MAX)
            {
                throw new ProtocolException("handshake: truncated generations, " + body.readableBytes()
                    + " bytes after the names (expected " + GENERATION_BYTES + ")");
            }
            // a version-1 peer: no generations (its version is refused by mismatch())
            return new Hello(magic, versionMin, versionMax, role, size, blockSize, node, target, volume);
        }
        return new Hello(magic, versionMin, versionMax, role, size, blockSize, node, target, volume, body.readLong(),
            body.readLong(), body.readUnsignedByte(), body.readUnsignedByte(), body.readLong(), body.readLong());
    }

    /** The highest version both sides speak, or -1. */
    public int agreedVersion()
    {
        final int hi = Math.min(versionMax, WireProtocol.VERSION_MAX);
        final int lo = Math.max(versionMin, WireProtocol.VERSION_MIN);
        return hi >= lo ? hi : -1;
    }

    /**
     * What is wrong with a peer's hello for our side of {@code volume}, or null when it is acceptable.
     * Both ends run this check, so a mismatch is reported in both logs.
     */
    public String mismatch(final String localNode, final String expectedPeer, final int expectedRole,
        final long localSize, final int localBlockSize)
    {
        if (agreedVersion() < 0)
        {
            return "protocol version " + range(versionMin, versionMax) + " not supported: this node speaks "
                + range(WireProtocol.VERSION_MIN, WireProtocol.VERSION_MAX);
        }
        if (!node.equals(expectedPeer))
        {
            return "volume " + volume + ": peer is node \"" + node + "\", but the config expects \"" + expectedPeer + "\"";
        }
        if (!target.equals(localNode))
        {
            return "volume " + volume + ": peer \"" + node + "\" wanted node \"" + target + "\", this is \"" + localNode + "\"";
        }
        if (role != expectedRole && (role == WireProtocol.ROLE_TWO_WAY || expectedRole == WireProtocol.ROLE_TWO_WAY))
        {
            return "volume " + volume + ": peer \"" + node + "\" has it as " + roleName(role) + ", this node as "
                + roleName(expectedRole) + " (mode = \"two-way\" must be set on both nodes, or on neither)";
        }
        if (role != expectedRole)
        {
            return "volume " + volume + ": peer \"" + node + "\" is " + roleName(role) + ", expected "
                + roleName(expectedRole) + " (both sides cannot have the same role)";
        }
        if (size != localSize)
        {
            return "volume " + volume + ": size mismatch, peer has " + size + " bytes, this node has " + localSize;
        }
        if (blockSize != localBlockSize)
        {
            return "volume " + volume + ": block-size mismatch, peer uses " + blockSize + ", this node uses "
                + localBlockSize;
        }
        return null;
    }

    public static String roleName(final int role)
    {
        return role == WireProtocol.ROLE_PRIMARY ? "primary" : role == WireProtocol.ROLE_STANDBY ? "standby"
            : role == WireProtocol.ROLE_TWO_WAY ? "two-way" : "role " + role;
    }

    private static String range(final int lo, final int hi)
    {
        return lo == hi ? String.valueOf(lo) : lo + ".." + hi;
    }

    /** REJECT body: code u16 | message (u16 length + UTF-8). */
    public static void encodeReject(final ByteBuf buf, final String message, final CRC32C crc)
    {
        encodeReject(buf, WireProtocol.REJECT_HANDSHAKE, message, crc);
    }

    /** A REJECT with {@code code} ({@link WireProtocol#REJECT_HANDSHAKE} or {@link WireProtocol#REJECT_AUTH}). */
    public static void encodeReject(final ByteBuf buf, final int code, final String message, final CRC32C crc)
    {
        final int start = WireProtocol.beginFrame(buf, WireProtocol.TYPE_REJECT);
        final byte[] bytes = message.getBytes(StandardCharsets.UTF_8);
        final int n = Math.min(bytes.length, 1024);
        buf.writeShort(code);
        buf.writeShort(n);
        buf.writeBytes(bytes, 0, n);
        WireProtocol.endFrame(buf, start, crc);
    }

    /** The code of a REJECT body, without consuming it (1 when truncated). */
    public static int rejectCode(final ByteBuf body)
    {
        return body.readableBytes() < 2 ? WireProtocol.REJECT_HANDSHAKE : body.getUnsignedShort(body.readerIndex());
    }

    public static String decodeReject(final ByteBuf body)
    {
        if (body.readableBytes() < 4)
        {
            return "(truncated reject)";
        }
        body.skipBytes(2);
        final int n = Math.min(body.readUnsignedShort(), body.readableBytes());
        return body.readCharSequence(n, StandardCharsets.UTF_8).toString();
    }
}
