package io.doppel.nbd;

import io.doppel.nbd.NbdTestSupport.NodePair;
import io.doppel.nbd.NbdTestSupport.ToolResult;
import io.doppel.replication.TestCluster;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;

import static io.doppel.nbd.RawNbdClient.CMD_FLUSH;
import static io.doppel.nbd.RawNbdClient.CMD_READ;
import static io.doppel.nbd.RawNbdClient.CMD_TRIM;
import static io.doppel.nbd.RawNbdClient.CMD_WRITE;
import static io.doppel.nbd.RawNbdClient.CMD_WRITE_ZEROES;
import static io.doppel.nbd.RawNbdClient.EINVAL;
import static io.doppel.nbd.RawNbdClient.EPERM;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Malformed and hostile NBD traffic over a raw socket, against a running primary and standby: bad
 * requests get the errno the protocol wants and leave the connection usable; broken framing (bad magic,
 * oversized options, garbage or unknown client flags) closes that one connection. After every bad client a
 * fresh well-behaved one (a raw READ, and qemu-io when installed) is still served, and neither image
 * has changed.
 */
class NbdMalformedTrafficTest
{
    private static final long SIZE = 64L << 20;

    @TempDir
    static Path dir;

    private static TestCluster cluster;
    private static NodePair nodes;
    private static String alphaHash;
    private static String betaHash;

    @BeforeAll
    static void start() throws Exception
    {
        cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 61);
        nodes = NodePair.start(cluster, false, false);
        nodes.awaitInSync(30);
        nodes.flushBoth();
        alphaHash = MixedImage.hash(cluster.alphaImage);
        betaHash = MixedImage.hash(cluster.betaImage);
        assertThat(betaHash).isEqualTo(alphaHash);
    }

    @AfterAll
    static void stop()
    {
        if (nodes != null)
        {
            nodes.close();
        }
    }

    /** The daemon keeps serving well-behaved clients, and nothing of the bad traffic reached an image. */
    @AfterEach
    void daemonStillServesAndNothingChanged() throws Exception
    {
        try (RawNbdClient c = RawNbdClient.open(nodes.alphaNbdPort, "vm1"))
        {
            assertThat(c.read(1 << 20, 65536)).as("a fresh client's READ on the primary")
                .isEqualTo(fileBytes(cluster.alphaImage, 1 << 20, 65536));
        }
        try (RawNbdClient c = RawNbdClient.open(nodes.betaNbdPort, "vm1"))
        {
            assertThat(c.read(2 << 20, 65536)).as("a fresh client's READ on the standby")
                .isEqualTo(fileBytes(cluster.betaImage, 2 << 20, 65536));
        }
        if (NbdTestSupport.toolExists("qemu-io"))
        {
            final ToolResult read = NbdTestSupport.run(30, "qemu-io", "-r", "-f", "raw", nodes.primaryUri(),
                "-c", "read 4096 65536");
            assertThat(read.exit()).as(read.describe()).isZero();
            assertThat(read.output()).as(read.describe()).contains("read 65536/65536 bytes at offset 4096");
        }
        nodes.flushBoth();
        assertThat(MixedImage.hash(cluster.alphaImage)).as("primary image untouched").isEqualTo(alphaHash);
        assertThat(MixedImage.hash(cluster.betaImage)).as("standby image untouched").isEqualTo(betaHash);
    }

    @Test
    void requestsPastTheEndGetEinvalAndTheConnectionStaysUsable() throws Exception
    {
        try (RawNbdClient c = RawNbdClient.open(nodes.alphaNbdPort, "vm1"))
        {
            assertThat(c.exportSize).isEqualTo(SIZE);
            assertThat(c.simpleReply(c.request(0, CMD_READ, SIZE - 1024, 2048, null)))
                .as("READ across the end").isEqualTo(EINVAL);
            assertThat(c.simpleReply(c.request(0, CMD_READ, SIZE, 1, null)))
                .as("READ at the end").isEqualTo(EINVAL);
            assertThat(c.simpleReply(c.request(0, CMD_READ, 0x8000000000000000L, 4096, null)))
                .as("READ at offset 2^63").isEqualTo(EINVAL);
            assertThat(c.simpleReply(c.request(0, CMD_READ, -4096L, 8192, null)))
                .as("READ whose offset+length wraps around 2^64").isEqualTo(EINVAL);
            // A WRITE past the end: its payload must be consumed (not taken as the next request), not written.
            final byte[] payload = new byte[4096];
            Arrays.fill(payload, (byte)0x5a);
            assertThat(c.simpleReply(c.request(0, CMD_WRITE, SIZE - 100, payload.length, payload)))
                .as("WRITE across the end").isEqualTo(EINVAL);
            assertThat(c.simpleReply(c.request(0, CMD_TRIM, SIZE - 100, 4096, null)))
                .as("TRIM across the end").isEqualTo(EINVAL);
            assertThat(c.simpleReply(c.request(0, CMD_WRITE_ZEROES, SIZE, 4096, null)))
                .as("WRITE_ZEROES past the end").isEqualTo(EINVAL);
            // Still usable: a valid READ right after, of the last block (which the WRITE did not touch).
            assertThat(c.read(SIZE - 4096, 4096)).isEqualTo(fileBytes(cluster.alphaImage, SIZE - 4096, 4096));
            assertThat(c.read(4096, 8192)).isEqualTo(fileBytes(cluster.alphaImage, 4096, 8192));
        }
    }

    @Test
    void unknownCommandTypeGetsEinval() throws Exception
    {
        try (RawNbdClient c = RawNbdClient.open(nodes.alphaNbdPort, "vm1"))
        {
            assertThat(c.simpleReply(c.request(0, 42, 0, 4096, null))).as("command 42").isEqualTo(EINVAL);
            assertThat(c.simpleReply(c.request(0, 0xffff, 0, 0, null))).as("command 65535").isEqualTo(EINVAL);
            assertThat(c.read(0, 4096)).isEqualTo(fileBytes(cluster.alphaImage, 0, 4096));
        }
    }

    @Test
    void badRequestMagicClosesTheConnection() throws Exception
    {
        try (RawNbdClient c = RawNbdClient.open(nodes.alphaNbdPort, "vm1"))
        {
            assertThat(c.read(0, 512)).hasSize(512);
            c.out.writeInt(0x12345678);
            c.out.writeShort(0);
            c.out.writeShort(CMD_READ);
            c.out.writeLong(99);
            c.out.writeLong(0);
            c.out.writeInt(4096);
            c.out.flush();
            assertThat(c.awaitClosed(0)).as("after a bad request magic").isNull();
        }
    }

    @Test
    void oversizedOptionLengthClosesTheConnection() throws Exception
    {
        try (RawNbdClient c = RawNbdClient.greeted(nodes.alphaNbdPort))
        {
            c.sendClientFlags(3);
            c.out.writeLong(RawNbdClient.IHAVEOPT);
            c.out.writeInt(RawNbdClient.OPT_GO);
            c.out.writeInt(0x7fffffff);
            c.out.write(new byte[64]);
            c.out.flush();
            assertThat(c.awaitClosed(0)).as("after an option of 0x7fffffff bytes").isNull();
        }
    }

    @Test
    void badOptionMagicClosesTheConnection() throws Exception
    {
        try (RawNbdClient c = RawNbdClient.greeted(nodes.alphaNbdPort))
        {
            c.sendClientFlags(3);
            c.out.writeLong(0x0123456789abcdefL);
            c.out.writeInt(RawNbdClient.OPT_LIST);
            c.out.writeInt(0);
            c.out.flush();
            assertThat(c.awaitClosed(0)).as("after a bad option magic").isNull();
        }
    }

    @Test
    void unknownExportInGoGetsErrUnknownAndHagglingGoesOn() throws Exception
    {
        try (RawNbdClient c = RawNbdClient.greeted(nodes.alphaNbdPort))
        {
            c.sendClientFlags(3);
            final List<RawNbdClient.OptionReply> replies = c.go("no-such-volume");
            assertThat(replies).as(replies.toString()).hasSize(1);
            assertThat(replies.get(0).type()).as(replies.toString()).isEqualTo(RawNbdClient.REP_ERR_UNKNOWN);
            assertThat(replies.get(0).option()).isEqualTo(RawNbdClient.OPT_GO);
            // The same connection can go on haggling and enter the right export.
            final List<RawNbdClient.OptionReply> good = c.go("vm1");
            assertThat(good.get(good.size() - 1).type()).as(good.toString()).isEqualTo(RawNbdClient.REP_ACK);
            assertThat(c.exportSize).isEqualTo(SIZE);
            assertThat(c.read(0, 4096)).isEqualTo(fileBytes(cluster.alphaImage, 0, 4096));
        }
    }

    @Test
    void listNamesTheExport() throws Exception
    {
        try (RawNbdClient c = RawNbdClient.greeted(nodes.alphaNbdPort))
        {
            c.sendClientFlags(3);
            c.sendOption(RawNbdClient.OPT_LIST, new byte[0]);
            final List<RawNbdClient.OptionReply> replies = c.readOptionReplies(RawNbdClient.OPT_LIST);
            assertThat(replies).as(replies.toString()).hasSize(2);
            assertThat(replies.get(0).type()).isEqualTo(RawNbdClient.REP_SERVER);
            assertThat(Arrays.copyOfRange(replies.get(0).data(), 4, replies.get(0).data().length))
                .isEqualTo("vm1".getBytes(StandardCharsets.UTF_8));
            assertThat(replies.get(1).type()).isEqualTo(RawNbdClient.REP_ACK);
        }
    }

    @Test
    void exportNameOptionEntersAKnownExportAndHangsUpOnAnUnknownOne() throws Exception
    {
        try (RawNbdClient c = RawNbdClient.greeted(nodes.alphaNbdPort))
        {
            c.sendClientFlags(3);
            c.sendOption(RawNbdClient.OPT_EXPORT_NAME, "vm1".getBytes(StandardCharsets.UTF_8));
            assertThat(c.in.readLong()).as("export size").isEqualTo(SIZE);
            final int flags = c.in.readUnsignedShort();
            assertThat(flags & RawNbdClient.TFLAG_READ_ONLY).as("primary is writable").isZero();
            // NO_ZEROES was asked for: the next bytes are the READ reply, not 124 zeros.
            assertThat(c.read(4096, 4096)).isEqualTo(fileBytes(cluster.alphaImage, 4096, 4096));
        }
        try (RawNbdClient c = RawNbdClient.greeted(nodes.alphaNbdPort))
        {
            c.sendClientFlags(3);
            c.sendOption(RawNbdClient.OPT_EXPORT_NAME, "no-such-volume".getBytes(StandardCharsets.UTF_8));
            assertThat(c.awaitClosed(0)).as("NBD_OPT_EXPORT_NAME of an unknown export has no error reply: hang up")
                .isNull();
        }
    }

    @Test
    void garbageInsteadOfClientFlagsClosesTheConnection() throws Exception
    {
        try (RawNbdClient c = RawNbdClient.greeted(nodes.alphaNbdPort))
        {
            c.out.write("GARBAGE!GARBAGE!GARBAGE!".getBytes(StandardCharsets.US_ASCII));
            c.out.flush();
            assertThat(c.awaitClosed(0)).as("after garbage client flags").isNull();
        }
    }

    /**
     * proto.md, newstyle negotiation: "the server MUST close the TCP connection if it does not recognize
     * the client's flags". Only bits 0 (FIXED_NEWSTYLE) and 1 (NO_ZEROES) are defined.
     */
    @Test
    void unknownClientFlagBitsCloseTheConnection() throws Exception
    {
        try (RawNbdClient c = RawNbdClient.greeted(nodes.alphaNbdPort))
        {
            c.sendClientFlags(0xdeadbeef); // bits 0 and 1 set, and many unknown ones
            try
            {
                c.sendOption(RawNbdClient.OPT_LIST, new byte[0]);
            }
            catch (final java.io.IOException e)
            {
                // the server may already have closed: that is the point
            }
            assertThat(c.awaitClosed(0)).as("client flags 0xdeadbeef must close the connection, not start haggling")
                .isNull();
        }
    }

    @Test
    void writesToTheStandbyExportGetEpermAndChangeNothing() throws Exception
    {
        try (RawNbdClient c = RawNbdClient.open(nodes.betaNbdPort, "vm1"))
        {
            assertThat(c.transmissionFlags & RawNbdClient.TFLAG_READ_ONLY).as("standby export flags 0x"
                + Integer.toHexString(c.transmissionFlags)).isNotZero();
            final byte[] payload = new byte[8192];
            Arrays.fill(payload, (byte)0xee);
            assertThat(c.simpleReply(c.request(0, CMD_WRITE, 0, payload.length, payload))).as("WRITE")
                .isEqualTo(EPERM);
            assertThat(c.simpleReply(c.request(1, CMD_WRITE, 65536, payload.length, payload))).as("FUA WRITE")
                .isEqualTo(EPERM);
            assertThat(c.simpleReply(c.request(0, CMD_TRIM, 1 << 20, 1 << 20, null))).as("TRIM").isEqualTo(EPERM);
            assertThat(c.simpleReply(c.request(0, CMD_WRITE_ZEROES, 1 << 20, 1 << 20, null))).as("WRITE_ZEROES")
                .isEqualTo(EPERM);
            assertThat(c.simpleReply(c.request(0, CMD_FLUSH, 0, 0, null))).as("FLUSH is allowed").isZero();
            assertThat(c.read(0, 8192)).as("READ after the refused writes")
                .isEqualTo(fileBytes(cluster.betaImage, 0, 8192));
        }
    }

    @Test
    void structuredRepliesCarryErrorsAndData() throws Exception
    {
        try (RawNbdClient c = structured())
        {
            final long bad = c.request(0, CMD_READ, SIZE - 10, 4096, null);
            final RawNbdClient.Chunk error = c.structuredChunk();
            assertThat(error.cookie()).isEqualTo(bad);
            assertThat(error.type()).as(error.toString()).isEqualTo(RawNbdClient.REPLY_TYPE_ERROR);
            assertThat(error.flags() & RawNbdClient.REPLY_FLAG_DONE).as(error.toString()).isNotZero();
            assertThat(error.errno()).as(error.toString()).isEqualTo(EINVAL);

            final long good = c.request(0, CMD_READ, 8192, 4096, null);
            final RawNbdClient.Chunk data = c.structuredChunk();
            assertThat(data.cookie()).isEqualTo(good);
            assertThat(data.type()).as(data.toString()).isEqualTo(RawNbdClient.REPLY_TYPE_OFFSET_DATA);
            assertThat(data.flags() & RawNbdClient.REPLY_FLAG_DONE).as(data.toString()).isNotZero();
            assertThat(ByteBuffer.wrap(data.data()).getLong()).as("chunk offset").isEqualTo(8192);
            assertThat(Arrays.copyOfRange(data.data(), 8, data.data().length))
                .isEqualTo(fileBytes(cluster.alphaImage, 8192, 4096));
        }
    }

    /**
     * proto.md, NBD_CMD_READ: "If structured replies are negotiated, then a read request MUST result in a
     * structured reply" (and a simple reply MAY be used "to any request other than NBD_CMD_READ"). A
     * zero-length READ is answered with an NBD_REPLY_TYPE_NONE chunk with NBD_REPLY_FLAG_DONE.
     */
    @Test
    void zeroLengthReadWithStructuredRepliesGetsAStructuredReply() throws Exception
    {
        try (RawNbdClient c = structured())
        {
            final long cookie = c.request(0, CMD_READ, 4096, 0, null);
            final RawNbdClient.Chunk chunk = c.structuredChunk();
            assertThat(chunk.cookie()).isEqualTo(cookie);
            assertThat(chunk.flags() & RawNbdClient.REPLY_FLAG_DONE).as(chunk.toString()).isNotZero();
            assertThat(chunk.type()).as(chunk.toString()).isIn(RawNbdClient.REPLY_TYPE_NONE,
                RawNbdClient.REPLY_TYPE_ERROR);
        }
    }

    /** Greeted, structured replies negotiated, vm1 on the primary entered. */
    private static RawNbdClient structured() throws IOException
    {
        final RawNbdClient c = RawNbdClient.greeted(nodes.alphaNbdPort);
        c.sendClientFlags(3);
        c.sendOption(RawNbdClient.OPT_STRUCTURED_REPLY, new byte[0]);
        final List<RawNbdClient.OptionReply> ack = c.readOptionReplies(RawNbdClient.OPT_STRUCTURED_REPLY);
        assertThat(ack.get(ack.size() - 1).type()).as(ack.toString()).isEqualTo(RawNbdClient.REP_ACK);
        final List<RawNbdClient.OptionReply> go = c.go("vm1");
        assertThat(go.get(go.size() - 1).type()).as(go.toString()).isEqualTo(RawNbdClient.REP_ACK);
        return c;
    }

    private static byte[] fileBytes(final Path file, final long offset, final int length) throws IOException
    {
        final ByteBuffer buf = ByteBuffer.allocate(length);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ))
        {
            while (buf.hasRemaining())
            {
                if (ch.read(buf, offset + buf.position()) < 0)
                {
                    throw new IOException("short file " + file);
                }
            }
        }
        return buf.array();
    }
}
