package io.doppel.nbd;

import io.doppel.fuzz.Fuzz;
import io.doppel.nbd.NbdTestSupport.NodePair;
import io.doppel.replication.TestCluster;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Fuzzes the NBD server over real sockets against a running primary and standby: random bytes in every
 * phase, mutated option haggling (bit flips, changed lengths and codes, cuts), and random request streams
 * in the transmission phase. Every connection must end in well-formed replies and a close (never a dead
 * thread, never an exception only Netty's log sees), the daemon must go on serving, neither image may
 * change (the primary is only sent requests that cannot write), and a client that does not read its
 * replies must not make the server buffer them without bound.
 */
class NbdFuzzTest
{
    private static final long SIZE = 16L << 20;
    private static final int OPT_INFO = 6;
    private static final int OPT_LIST_META_CONTEXT = 9;
    private static final int OPT_SET_META_CONTEXT = 10;
    private static final int CMD_CACHE = 5;
    private static final int CMD_BLOCK_STATUS = 7;
    /** [limits].nbd-request by default: a WRITE longer than this is refused by hanging up. */
    private static final long MAX_REQUEST = 32L << 20;

    @TempDir
    static Path dir;

    private static TestCluster cluster;
    private static NodePair nodes;
    private static String alphaHash;
    private static String betaHash;
    private static Fuzz.Watch watch;

    @BeforeAll
    static void start() throws Exception
    {
        watch = new Fuzz.Watch();
        cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 17);
        nodes = NodePair.start(cluster, false, false);
        nodes.awaitInSync(30);
        nodes.flushBoth();
        alphaHash = MixedImage.hash(cluster.alphaImage);
        betaHash = MixedImage.hash(cluster.betaImage);
    }

    @AfterAll
    static void stop()
    {
        try
        {
            if (nodes != null)
            {
                nodes.close();
            }
        }
        finally
        {
            watch.close();
        }
    }

    @AfterEach
    void daemonAliveAndImagesUntouched() throws Exception
    {
        try (RawNbdClient c = RawNbdClient.open(nodes.alphaNbdPort, "vm1"))
        {
            assertThat(c.read(8192, 4096)).as("a well-behaved client is still served").hasSize(4096);
        }
        try (RawNbdClient c = RawNbdClient.open(nodes.betaNbdPort, "vm1"))
        {
            assertThat(c.read(8192, 4096)).as("a well-behaved client is still served by the standby").hasSize(4096);
        }
        nodes.flushBoth();
        assertThat(MixedImage.hash(cluster.alphaImage)).as("primary image untouched").isEqualTo(alphaHash);
        assertThat(MixedImage.hash(cluster.betaImage)).as("standby image untouched").isEqualTo(betaHash);
        assertThat(watch.problems()).as("dead threads or exceptions seen only by Netty's log").isEmpty();
    }

    // ---------------------------------------------------------------- random bytes: the server hangs up

    @Test
    void randomBytesInAnyPhaseCloseTheConnection() throws Exception
    {
        final SplittableRandom random = new SplittableRandom(Fuzz.SEED);
        for (int i = 0; i < Fuzz.iterations(150); i++)
        {
            final int phase = random.nextInt(3);
            final byte[] junk = new byte[28 + random.nextInt(2000)];
            random.nextBytes(junk);
            if (phase == 0 && (junk[0] | junk[1] | junk[2]) == 0)
            {
                junk[0] = 1; // not valid client flags by accident
            }
            try (Socket s = Fuzz.connect(random.nextBoolean() ? nodes.alphaNbdPort : nodes.betaNbdPort))
            {
                final DataInputStream in = new DataInputStream(s.getInputStream());
                in.readFully(new byte[18]); // greeting
                final DataOutputStream out = new DataOutputStream(s.getOutputStream());
                if (phase >= 1)
                {
                    out.writeInt(3);
                }
                if (phase == 2)
                {
                    enter(out, in, "vm1");
                    junk[0] = (byte)(junk[0] == 0x25 ? 0x26 : junk[0]); // never the request magic
                }
                try
                {
                    out.write(junk);
                    out.flush();
                }
                catch (final IOException e)
                {
                    // already closed: fine
                }
                // without closing our side: the server must hang up by itself
                final long got = Fuzz.readUntilClosed(s, 5_000, "server");
                assertThat(got).as("case %d (phase %d, seed %d): bytes after garbage", i, phase, Fuzz.SEED)
                    .isLessThan(4096);
            }
        }
    }

    // ---------------------------------------------------------------- option haggling

    @Test
    void mutatedOptionHagglingGetsWellFormedRepliesAndAClose() throws Exception
    {
        final byte[] valid = validHaggling();
        final SplittableRandom random = new SplittableRandom(Fuzz.SEED + 2);
        for (int i = 0; i < Fuzz.iterations(150); i++)
        {
            final byte[] input = mutate(random, valid.clone());
            final int port = random.nextBoolean() ? nodes.alphaNbdPort : nodes.betaNbdPort;
            try (Socket s = Fuzz.connect(port))
            {
                final DataInputStream in = new DataInputStream(s.getInputStream());
                in.readFully(new byte[18]);
                try
                {
                    s.getOutputStream().write(input);
                    s.shutdownOutput();
                }
                catch (final IOException e)
                {
                    // closed early: fine
                }
                final String what = "case " + i + " (seed " + (Fuzz.SEED + 2) + ", input "
                    + RawNbdClient.hex(input, Math.min(input.length, 80)) + ")";
                checkOptionReplies(in, what);
                assertThat(Fuzz.readUntilClosed(s, 5_000, "server")).as("%s: bytes after the option replies", what)
                    .isLessThan(1 << 20);
            }
        }
    }

    /** Flags, STRUCTURED_REPLY, LIST, INFO, LIST_META_CONTEXT, SET_META_CONTEXT, GO: what qemu sends. */
    private static byte[] validHaggling() throws IOException
    {
        final ByteArrayOutputStream b = new ByteArrayOutputStream();
        final DataOutputStream d = new DataOutputStream(b);
        d.writeInt(3);
        option(d, RawNbdClient.OPT_STRUCTURED_REPLY, new byte[0]);
        option(d, RawNbdClient.OPT_LIST, new byte[0]);
        option(d, OPT_INFO, infoBody("vm1", 1));
        option(d, OPT_LIST_META_CONTEXT, metaBody("vm1", "base:allocation"));
        option(d, OPT_SET_META_CONTEXT, metaBody("vm1", "base:allocation"));
        option(d, RawNbdClient.OPT_GO, infoBody("vm1", 0));
        return b.toByteArray();
    }

    private static void option(final DataOutputStream d, final int option, final byte[] data) throws IOException
    {
        d.writeLong(RawNbdClient.IHAVEOPT);
        d.writeInt(option);
        d.writeInt(data.length);
        d.write(data);
    }

    private static byte[] infoBody(final String name, final int requests) throws IOException
    {
        final ByteArrayOutputStream b = new ByteArrayOutputStream();
        final DataOutputStream d = new DataOutputStream(b);
        final byte[] n = name.getBytes(StandardCharsets.UTF_8);
        d.writeInt(n.length);
        d.write(n);
        d.writeShort(requests);
        for (int i = 0; i < requests; i++)
        {
            d.writeShort(1); // NBD_INFO_NAME
        }
        return b.toByteArray();
    }

    private static byte[] metaBody(final String name, final String query) throws IOException
    {
        final ByteArrayOutputStream b = new ByteArrayOutputStream();
        final DataOutputStream d = new DataOutputStream(b);
        final byte[] n = name.getBytes(StandardCharsets.UTF_8);
        d.writeInt(n.length);
        d.write(n);
        d.writeInt(1);
        final byte[] q = query.getBytes(StandardCharsets.UTF_8);
        d.writeInt(q.length);
        d.write(q);
        return b.toByteArray();
    }

    /**
     * Reads option replies until the stream ends or leaves option haggling (GO acknowledged, or the 10-byte
     * answer to an EXPORT_NAME a mutation produced). Each reply must be well-formed: the magic, a known
     * type, a bounded length.
     */
    private static void checkOptionReplies(final DataInputStream in, final String what) throws IOException
    {
        final byte[] header = new byte[20];
        while (true)
        {
            final int n = readUpTo(in, header);
            if (n < header.length)
            {
                return; // the server hung up (between replies, or after an EXPORT_NAME answer)
            }
            final ByteBuffer h = ByteBuffer.wrap(header);
            final long magic = h.getLong();
            if (magic != RawNbdClient.OPTION_REPLY_MAGIC)
            {
                return; // an EXPORT_NAME answer or transmission replies follow: not option replies any more
            }
            final int option = h.getInt();
            final int type = h.getInt();
            final int length = h.getInt();
            assertThat(type == 1 || type == 2 || type == 3 || type == 4 || (type & 0x80000000) != 0)
                .as("%s: reply type 0x%s to option %d", what, Integer.toHexString(type), option).isTrue();
            assertThat(length).as("%s: reply length", what).isBetween(0, 64 << 10);
            in.readFully(new byte[length]);
            if (option == RawNbdClient.OPT_GO && type == RawNbdClient.REP_ACK)
            {
                return;
            }
        }
    }

    // ---------------------------------------------------------------- transmission

    @Test
    void randomRequestsOnTheStandbyExportGetInOrderRepliesAndWriteNothing() throws Exception
    {
        randomRequests(nodes.betaNbdPort, true, Fuzz.SEED + 3);
    }

    @Test
    void randomNonWritingRequestsOnThePrimaryGetInOrderReplies() throws Exception
    {
        randomRequests(nodes.alphaNbdPort, false, Fuzz.SEED + 4);
    }

    private record Sent(long cookie, int type, long offset, long length)
    {
    }

    /**
     * Connections that each send a random stream of requests (any type, flags, offsets at and past the
     * edges, any length). On the primary, a request that would write is moved past the end of the export.
     * The stream stops at the first request after which the server must hang up (bad magic, oversized
     * WRITE, DISC); the replies are then read and checked one by one, in order.
     */
    private static void randomRequests(final int port, final boolean anyWrite, final long seed) throws Exception
    {
        final SplittableRandom random = new SplittableRandom(seed);
        final int connections = Fuzz.iterations(40);
        for (int c = 0; c < connections; c++)
        {
            try (Socket s = Fuzz.connect(port))
            {
                final DataInputStream in = new DataInputStream(s.getInputStream());
                final DataOutputStream out = new DataOutputStream(new java.io.BufferedOutputStream(s.getOutputStream()));
                in.readFully(new byte[18]);
                out.writeInt(3);
                final boolean structured = random.nextBoolean();
                if (structured)
                {
                    option(out, RawNbdClient.OPT_STRUCTURED_REPLY, new byte[0]);
                    option(out, OPT_SET_META_CONTEXT, metaBody("vm1", "base:allocation"));
                    out.flush();
                    skipOptionReplies(in, 2);
                }
                enter(out, in, "vm1");
                final Deque<Sent> sent = new ArrayDeque<>();
                boolean closes = false;
                final int requests = 1 + random.nextInt(40);
                for (int r = 0; r < requests && !closes; r++)
                {
                    final int type = randomType(random);
                    long offset = randomOffset(random);
                    long length = randomLength(random);
                    if (type == RawNbdClient.CMD_WRITE && length > (1 << 20) && length <= MAX_REQUEST)
                    {
                        length = 1 << 20; // a payload we send in full
                    }
                    final boolean writes = type == RawNbdClient.CMD_WRITE || type == RawNbdClient.CMD_TRIM
                        || type == RawNbdClient.CMD_WRITE_ZEROES;
                    if (writes && !anyWrite && length > 0 && offset >= 0 && offset <= SIZE - length)
                    {
                        offset = SIZE + random.nextInt(1 << 20); // past the end: refused, never written
                    }
                    final boolean badMagic = random.nextInt(50) == 0;
                    final long cookie = random.nextLong();
                    out.writeInt(badMagic ? random.nextInt() | 1 : RawNbdClient.REQUEST_MAGIC);
                    out.writeShort(random.nextInt(8) == 0 ? random.nextInt(1 << 16) : random.nextInt(16));
                    out.writeShort(type);
                    out.writeLong(cookie);
                    out.writeLong(offset);
                    out.writeInt((int)length);
                    final boolean oversized = type == RawNbdClient.CMD_WRITE && length > MAX_REQUEST;
                    if (type == RawNbdClient.CMD_WRITE && !oversized && !badMagic)
                    {
                        final byte[] payload = new byte[(int)length];
                        random.nextBytes(payload);
                        out.write(payload);
                    }
                    // after these the server hangs up: a WRITE over the maximum cannot be skipped safely
                    closes = badMagic || oversized || type == RawNbdClient.CMD_DISC;
                    if (!badMagic && !oversized)
                    {
                        sent.add(new Sent(cookie, type, offset, length));
                    }
                }
                if (!closes)
                {
                    out.writeInt(RawNbdClient.REQUEST_MAGIC);
                    out.writeShort(0);
                    out.writeShort(RawNbdClient.CMD_DISC);
                    out.writeLong(0);
                    out.writeLong(0);
                    out.writeInt(0);
                    sent.add(new Sent(0, RawNbdClient.CMD_DISC, 0, 0));
                }
                out.flush();
                final String what = "connection " + c + " (seed " + seed + ", structured " + structured + ")";
                checkReplies(in, sent, structured, anyWrite, what);
                assertThat(Fuzz.readUntilClosed(s, 5_000, "server")).as("%s: bytes after the last reply", what).isZero();
            }
        }
    }

    private static int randomType(final SplittableRandom random)
    {
        final int pick = random.nextInt(20);
        if (pick < 12)
        {
            return new int[] {RawNbdClient.CMD_READ, RawNbdClient.CMD_WRITE, RawNbdClient.CMD_FLUSH,
                RawNbdClient.CMD_TRIM, CMD_CACHE, RawNbdClient.CMD_WRITE_ZEROES, CMD_BLOCK_STATUS,
                RawNbdClient.CMD_READ, CMD_BLOCK_STATUS, RawNbdClient.CMD_READ, RawNbdClient.CMD_WRITE,
                RawNbdClient.CMD_READ}[pick];
        }
        if (pick < 13)
        {
            return RawNbdClient.CMD_DISC;
        }
        return pick < 17 ? 8 + random.nextInt(8) : random.nextInt(1 << 16);
    }

    private static long randomOffset(final SplittableRandom random)
    {
        switch (random.nextInt(8))
        {
            case 0: return SIZE;
            case 1: return SIZE - 1 - random.nextInt(8192);
            case 2: return -1L - random.nextInt(8192);
            case 3: return Long.MIN_VALUE + random.nextInt(10);
            case 4: return random.nextLong();
            default: return random.nextLong(SIZE);
        }
    }

    private static long randomLength(final SplittableRandom random)
    {
        switch (random.nextInt(10))
        {
            case 0: return 0;
            case 1: return 0xffffffffL;
            case 2: return SIZE + 1;
            case 3: return 1 + random.nextInt(1 << 20);
            case 4: return (32L << 20) + 1;
            default: return 1 + random.nextInt(65536);
        }
    }

    /**
     * Reads one reply (simple, or structured chunks until DONE) per request, matched by cookie: FLUSH is
     * answered when the data is durable, so replies may overtake it. Every request before a DISC must be
     * answered before the server hangs up (proto.md: "The server MUST handle all outstanding requests").
     */
    private static void checkReplies(final DataInputStream in, final Deque<Sent> sent, final boolean structured,
        final boolean readOnly, final String what) throws IOException
    {
        final java.util.Map<Long, Sent> pending = new java.util.LinkedHashMap<>();
        for (final Sent req : sent)
        {
            if (req.type() != RawNbdClient.CMD_DISC)
            {
                pending.put(req.cookie(), req);
            }
        }
        while (!pending.isEmpty())
        {
            final int magic;
            try
            {
                magic = in.readInt();
            }
            catch (final EOFException | java.net.SocketException e)
            {
                throw new AssertionError(what + ": closed with " + pending.size() + " requests unanswered: "
                    + pending.values());
            }
            if (magic == RawNbdClient.SIMPLE_REPLY_MAGIC)
            {
                final int error = in.readInt();
                final long cookie = in.readLong();
                final Sent req = pending.remove(cookie);
                assertThat(req).as("%s: a reply with cookie %d, unknown or answered before", what, cookie).isNotNull();
                if (req.type() == RawNbdClient.CMD_READ && error == 0)
                {
                    assertThat(structured).as("%s: a simple reply to a READ with structured replies", what).isFalse();
                    in.readFully(new byte[(int)req.length()]);
                }
                assertValid(req, error, readOnly, what);
                continue;
            }
            assertThat(magic).as("%s: reply magic", what).isEqualTo(RawNbdClient.STRUCTURED_REPLY_MAGIC);
            assertThat(structured).as("%s: a structured reply without structured replies", what).isTrue();
            final int flags = in.readUnsignedShort();
            final int type = in.readUnsignedShort();
            final long cookie = in.readLong();
            final int length = in.readInt();
            final Sent req = pending.get(cookie);
            assertThat(req).as("%s: a chunk with cookie %d, unknown or answered before", what, cookie).isNotNull();
            assertThat(length).as("%s: chunk length for %s", what, req).isBetween(0, (32 << 20) + 8);
            final byte[] data = new byte[length];
            in.readFully(data);
            assertValid(req, type == RawNbdClient.REPLY_TYPE_ERROR ? ByteBuffer.wrap(data).getInt() : 0, readOnly, what);
            if ((flags & RawNbdClient.REPLY_FLAG_DONE) != 0)
            {
                pending.remove(cookie);
            }
        }
    }

    /**
     * A request inside the export with a known type may succeed; anything else must have failed, and so must
     * every write to the read-only standby export.
     */
    private static void assertValid(final Sent req, final int error, final boolean readOnly, final String what)
    {
        final boolean inside = req.offset() >= 0 && req.length() <= SIZE && req.offset() <= SIZE - req.length();
        final boolean known = req.type() <= CMD_BLOCK_STATUS;
        final boolean writes = req.type() == RawNbdClient.CMD_WRITE || req.type() == RawNbdClient.CMD_TRIM
            || req.type() == RawNbdClient.CMD_WRITE_ZEROES;
        // FLUSH ignores offset and length (clients leave them zero; the server does not insist)
        if ((!inside && req.type() != RawNbdClient.CMD_FLUSH) || !known || (readOnly && writes))
        {
            assertThat(error).as("%s: error for %s (outside the export or unknown)", what, req).isNotZero();
        }
    }

    // ---------------------------------------------------------------- memory

    /**
     * A client that sends READs and never reads the replies: the server must stop reading requests once a
     * bounded amount of replies waits unsent, not read them all and hold gigabytes of replies.
     */
    @Test
    void readsWhoseRepliesAreNeverReadDoNotPileUpInMemory() throws Exception
    {
        System.gc();
        final long before = directMemory();
        final int requests = 48; // 48 x 16 MiB = 768 MiB of replies if the server served them all
        try (Socket s = Fuzz.connect(nodes.betaNbdPort))
        {
            s.setReceiveBufferSize(64 << 10);
            final DataInputStream in = new DataInputStream(s.getInputStream());
            final DataOutputStream out = new DataOutputStream(s.getOutputStream());
            in.readFully(new byte[18]);
            out.writeInt(3);
            enter(out, in, "vm1");
            final ByteArrayOutputStream b = new ByteArrayOutputStream();
            final DataOutputStream d = new DataOutputStream(b);
            for (int i = 0; i < requests; i++)
            {
                d.writeInt(RawNbdClient.REQUEST_MAGIC);
                d.writeShort(0);
                d.writeShort(RawNbdClient.CMD_READ);
                d.writeLong(i);
                d.writeLong(0);
                d.writeInt((int)SIZE);
            }
            out.write(b.toByteArray());
            out.flush();
            long peak = 0;
            for (int i = 0; i < 20; i++)
            {
                Thread.sleep(100);
                peak = Math.max(peak, directMemory() - before);
            }
            assertThat(peak).as("direct memory held for replies the client does not read (MiB)")
                .isLessThan(160L << 20);
            // The client then reads: it gets every reply, in order.
            for (int i = 0; i < requests; i++)
            {
                assertThat(in.readInt()).isEqualTo(RawNbdClient.SIMPLE_REPLY_MAGIC);
                assertThat(in.readInt()).isZero();
                assertThat(in.readLong()).isEqualTo(i);
                in.readFully(new byte[(int)SIZE]);
            }
        }
    }

    private static long directMemory()
    {
        long used = 0;
        for (final BufferPoolMXBean pool : ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class))
        {
            if (pool.getName().equals("direct"))
            {
                used += pool.getMemoryUsed();
            }
        }
        final io.netty.buffer.ByteBufAllocator alloc = io.netty.buffer.ByteBufAllocator.DEFAULT;
        if (alloc instanceof io.netty.buffer.ByteBufAllocatorMetricProvider)
        {
            used = Math.max(used, ((io.netty.buffer.ByteBufAllocatorMetricProvider)alloc).metric().usedDirectMemory());
        }
        return used;
    }

    // ---------------------------------------------------------------- helpers


    /** Sends NBD_OPT_GO for {@code name} and reads its replies up to the ACK. */
    private static void enter(final DataOutputStream out, final DataInputStream in, final String name)
        throws IOException
    {
        option(out, RawNbdClient.OPT_GO, infoBody(name, 0));
        out.flush();
        while (true)
        {
            final long magic = in.readLong();
            assertThat(magic).isEqualTo(RawNbdClient.OPTION_REPLY_MAGIC);
            in.readInt();
            final int type = in.readInt();
            in.readFully(new byte[in.readInt()]);
            if (type == RawNbdClient.REP_ACK)
            {
                return;
            }
            assertThat(type & 0x80000000).as("GO %s failed", name).isZero();
        }
    }

    private static void skipOptionReplies(final DataInputStream in, final int finals) throws IOException
    {
        int seen = 0;
        while (seen < finals)
        {
            assertThat(in.readLong()).isEqualTo(RawNbdClient.OPTION_REPLY_MAGIC);
            in.readInt();
            final int type = in.readInt();
            in.readFully(new byte[in.readInt()]);
            if (type == RawNbdClient.REP_ACK || (type & 0x80000000) != 0)
            {
                seen++;
            }
        }
    }

    /** Bit flips, a changed 32-bit field, a cut, or a spliced copy of another part. */
    private static byte[] mutate(final SplittableRandom random, final byte[] input)
    {
        byte[] b = input;
        final int n = 1 + random.nextInt(3);
        for (int k = 0; k < n; k++)
        {
            switch (random.nextInt(4))
            {
                case 0:
                    b[random.nextInt(b.length)] ^= (byte)(1 << random.nextInt(8));
                    break;
                case 1:
                {
                    final int at = random.nextInt(b.length - 3);
                    final int[] values = {0, 1, 2, 0x7fffffff, 0xffffffff, 0x10000, 65536 + 1, random.nextInt(64),
                        random.nextInt()};
                    ByteBuffer.wrap(b).putInt(at, values[random.nextInt(values.length)]);
                    break;
                }
                case 2:
                    b = Arrays.copyOf(b, 1 + random.nextInt(b.length));
                    break;
                default:
                {
                    final int from = random.nextInt(b.length);
                    final int len = random.nextInt(b.length - from);
                    final byte[] spliced = new byte[b.length + len];
                    final int at = random.nextInt(b.length);
                    System.arraycopy(b, 0, spliced, 0, at);
                    System.arraycopy(b, from, spliced, at, len);
                    System.arraycopy(b, at, spliced, at + len, b.length - at);
                    b = spliced;
                }
            }
        }
        return b;
    }

    private static int readUpTo(final InputStream in, final byte[] buf) throws IOException
    {
        int n = 0;
        try
        {
            while (n < buf.length)
            {
                final int r = in.read(buf, n, buf.length - n);
                if (r < 0)
                {
                    break;
                }
                n += r;
            }
        }
        catch (final java.net.SocketException e)
        {
            // reset by the server: closed
        }
        return n;
    }
}
