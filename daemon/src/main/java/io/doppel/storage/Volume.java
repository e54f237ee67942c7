package io.doppel.storage;

import com.sun.jna.LastErrorException;
import io.netty.util.internal.PlatformDependent;

import java.io.Closeable;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.atomic.AtomicIntegerArray;

/**
 * An image file or block device, memory-mapped read-write in windows of at most 1 GiB.
 *
 * <p>Why windows: a single {@link MappedByteBuffer} is limited to 2 GiB, and volumes are far larger.
 * The window length is a multiple of the largest block size (1 MiB), so an aligned block never
 * straddles two windows and the block pipeline can read it straight from the mapping. Byte-granular
 * reads and writes may cross windows; they are split here.
 *
 * <p>All access uses absolute-index operations on shared window buffers, so the methods are safe to
 * call from many threads and allocate nothing. {@link #flush()} forces only the windows written since
 * the previous flush.
 */
public final class Volume implements Closeable
{
    /** Default and largest window: 1 GiB. */
    public static final long MAX_WINDOW_BYTES = 1L << 30;
    /** Windows are a multiple of this, the largest supported block size. */
    public static final int WINDOW_ALIGNMENT = 1 << 20;

    private final Path path;
    private final long size;
    private final boolean blockDevice;
    private final int windowShift;
    private final long windowMask;
    private final FileChannel channel;
    /**
     * A descriptor for pwrite (-1: write through the mapping). Not the channel's: a FileChannel closes
     * itself when a thread writing through it is interrupted, and the volume must outlive any one thread.
     */
    private final int fd;
    private static final int EINTR = 4;
    /**
     * Writes at least this long go through pwrite. Shorter ones are stored into the mapping: each pwrite
     * pays for the inode's time stamps and a journal handle, which a store pays only once per page and
     * writeback (4 KiB random NBD writes: 64 µs of system time each through pwrite, several times the
     * cost through the mapping).
     */
    static final int PWRITE_MIN_BYTES = 64 << 10;
    private final MappedByteBuffer[] windows;
    private final long[] windowAddresses;
    private static final int PAGE_SIZE = NativeIo.pageSize();
    /**
     * Whether mapped stores are preceded by {@link #populate} (libc bound, Linux 5.14+). When not, direct
     * buffers of any length go through pwrite, so no store into the mapping is left unguarded.
     */
    private volatile boolean populate;
    private final AtomicIntegerArray touched;
    /** The first failed flush; from then on no flush reports success. Guarded by this. */
    private DiskWriteException failedFlush;

    private Volume(final Path path, final long size, final boolean blockDevice, final long windowBytes,
        final FileChannel channel) throws IOException
    {
        this(path, size, blockDevice, windowBytes, channel, false);
    }

    private Volume(final Path path, final long size, final boolean blockDevice, final long windowBytes,
        final FileChannel channel, final boolean readOnly) throws IOException
    {
        this.path = path;
        this.size = size;
        this.blockDevice = blockDevice;
        this.windowShift = Long.numberOfTrailingZeros(windowBytes);
        this.windowMask = windowBytes - 1;
        this.channel = channel;
        final int count = (int)((size + windowBytes - 1) >>> windowShift);
        this.windows = new MappedByteBuffer[count];
        this.windowAddresses = new long[count];
        this.touched = new AtomicIntegerArray(Math.max(count, 1));
        for (int i = 0; i < count; i++)
        {
            final long start = (long)i << windowShift;
            windows[i] = channel.map(readOnly ? FileChannel.MapMode.READ_ONLY : FileChannel.MapMode.READ_WRITE, start,
                Math.min(windowBytes, size - start));
            // Native order on x86/ARM: the hash reads 64-bit words straight, without byte swaps.
            windows[i].order(ByteOrder.LITTLE_ENDIAN);
            windowAddresses[i] = PlatformDependent.hasUnsafe() ? PlatformDependent.directBufferAddress(windows[i]) : 0;
        }
        this.fd = readOnly ? -1 : NativeIo.openForWrite(path); // last: nothing after it can fail and leak it
        this.populate = fd >= 0 && PlatformDependent.hasUnsafe();
    }

    /**
     * Opens an existing image file or block device, or creates a sparse image. When {@code wantedSize}
     * is positive, a regular file is created or extended (never shrunk) to that size; a block device
     * must be at least that large.
     */
    public static Volume open(final Path path, final long wantedSize) throws IOException
    {
        return open(path, wantedSize, MAX_WINDOW_BYTES);
    }

    /** As {@link #open(Path, long)} with a chosen window length (tests use small windows). */
    public static Volume open(final Path path, final long wantedSize, final long windowBytes) throws IOException
    {
        if (windowBytes < WINDOW_ALIGNMENT || windowBytes > MAX_WINDOW_BYTES || Long.bitCount(windowBytes) != 1)
        {
            throw new IllegalArgumentException("window=" + windowBytes + ": expected a power of two between "
                + WINDOW_ALIGNMENT + " and " + MAX_WINDOW_BYTES);
        }
        final boolean device = isBlockDevice(path);
        final FileChannel channel;
        long size;
        if (device)
        {
            channel = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
            size = NativeIo.blockDeviceSize(path);
            if (wantedSize > size)
            {
                channel.close();
                throw new IOException(path + ": block device holds " + size + " bytes, config asks for " + wantedSize);
            }
        }
        else
        {
            if (wantedSize <= 0 && !Files.exists(path))
            {
                throw new IOException(path + ": no such image, and no size given to create one");
            }
            channel = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE,
                StandardOpenOption.CREATE);
            size = channel.size();
            if (wantedSize > size)
            {
                // Extending by writing one byte at the end keeps the file sparse.
                channel.write(ByteBuffer.wrap(new byte[1]), wantedSize - 1);
                size = wantedSize;
            }
        }
        if (size <= 0)
        {
            channel.close();
            throw new IOException(path + ": volume is empty (size 0)");
        }
        try
        {
            return new Volume(path, size, device, windowBytes, channel);
        }
        catch (final IOException | RuntimeException e)
        {
            channel.close();
            throw e;
        }
    }

    /**
     * Maps an existing image file that another program writes (watch mode), read-only: this process never
     * writes it, and a write through this volume fails ({@link java.nio.ReadOnlyBufferException}). The
     * size is the file's size now; {@code expectedSize} (when positive) must match it.
     */
    public static Volume openReadOnly(final Path path, final long expectedSize) throws IOException
    {
        if (!Files.isRegularFile(path))
        {
            throw new IOException(path + ": " + (Files.exists(path) ? "not a regular file" : "no such image")
                + "; a watched volume must be an existing image file");
        }
        final FileChannel channel = FileChannel.open(path, StandardOpenOption.READ);
        final long size = channel.size();
        if (size <= 0 || expectedSize > 0 && size != expectedSize)
        {
            channel.close();
            throw new IOException(path + ": watched image holds " + size + " bytes"
                + (size <= 0 ? " (empty)" : ", config says size = " + expectedSize));
        }
        try
        {
            return new Volume(path, size, false, MAX_WINDOW_BYTES, channel, true);
        }
        catch (final IOException | RuntimeException e)
        {
            channel.close();
            throw e;
        }
    }

    static boolean isBlockDevice(final Path path) throws IOException
    {
        if (!Files.exists(path))
        {
            return false;
        }
        final int mode = (Integer)Files.getAttribute(path, "unix:mode");
        return (mode & 0170000) == 0060000;
    }

    public Path path()
    {
        return path;
    }

    public long size()
    {
        return size;
    }

    public boolean isBlockDevice()
    {
        return blockDevice;
    }

    /** Copies {@code dst.remaining()} bytes starting at {@code offset} into {@code dst}, advancing its position. */
    public void read(final long offset, final ByteBuffer dst)
    {
        final int length = dst.remaining();
        checkRange(offset, length);
        long pos = offset;
        int done = 0;
        while (done < length)
        {
            final MappedByteBuffer window = windows[(int)(pos >>> windowShift)];
            final int inWindow = (int)(pos & windowMask);
            final int n = Math.min(length - done, window.capacity() - inWindow);
            dst.put(dst.position() + done, window, inWindow, n);
            done += n;
            pos += n;
        }
        dst.position(dst.position() + length);
    }

    /**
     * Writes {@code src.remaining()} bytes from {@code src} at {@code offset}, advancing its position.
     *
     * <p>Through pwrite (for a direct buffer), not the mapping: a store into a mapped page the file has not allocated yet faults,
     * and the kernel allocates under the fault, page by page (1.1 s of system time for 700 MB into a sparse
     * file here, against 0.25 s through pwrite); and a full disk fails a pwrite with an error instead of a
     * SIGBUS in the writing thread. The page cache is shared, so the mapping reads what was written, and
     * {@link #flush()} (msync of the window, which syncs the file's range) makes it durable.
     *
     * @throws UncheckedIOException when the write fails (disk full, I/O error), naming the file and range
     */
    public void write(final long offset, final ByteBuffer src)
    {
        final int length = src.remaining();
        checkRange(offset, length);
        if (length >= (populate ? PWRITE_MIN_BYTES : 0) && fd >= 0 && src.isDirect() && PlatformDependent.hasUnsafe())
        {
            pwrite(offset, PlatformDependent.directBufferAddress(src) + src.position(), length);
            for (long at = offset; at < offset + length; at = ((at >>> windowShift) + 1) << windowShift)
            {
                touch((int)(at >>> windowShift));
            }
        }
        else
        {
            writeMapped(offset, src, length); // short, a heap buffer (the Java API, tests), or no libc
        }
        src.position(src.position() + length);
    }

    /** True when direct buffers are written through pwrite (libc bound), false when through the mapping. */
    boolean writesThroughPwrite()
    {
        return fd >= 0 && PlatformDependent.hasUnsafe();
    }

    private void pwrite(final long offset, final long address, final int length)
    {
        long done = 0;
        while (done < length)
        {
            try
            {
                done += NativeIo.Direct.pwrite(fd, address + done, length - done, offset + done);
            }
            catch (final LastErrorException e)
            {
                if (e.getErrorCode() == EINTR)
                {
                    continue;
                }
                throw DiskWriteException.write(path, size, offset + done, (int)(length - done), e.getErrorCode(), e);
            }
        }
    }

    private void writeMapped(final long offset, final ByteBuffer src, final int length)
    {
        long pos = offset;
        int done = 0;
        while (done < length)
        {
            final int index = (int)(pos >>> windowShift);
            final MappedByteBuffer window = windows[index];
            final int inWindow = (int)(pos & windowMask);
            final int n = Math.min(length - done, window.capacity() - inWindow);
            if (populate)
            {
                populate(index, inWindow, n, pos);
            }
            try
            {
                window.put(inWindow, src, src.position() + done, n);
            }
            catch (final InternalError e)
            {
                // SIGBUS in the store: the file system could not back the page (full, or an I/O error)
                throw DiskWriteException.write(path, size, pos, n, 0, e);
            }
            touch(index);
            done += n;
            pos += n;
        }
    }

    /**
     * Faults the pages of a store in writable before making it (madvise MADV_POPULATE_WRITE): where the
     * file system cannot back a page (no space, an I/O error) this fails with an error here instead of a
     * SIGBUS in the store, which the JVM raises asynchronously in compiled code, at some later point of
     * the writing thread, where no caller can tell which write failed. Costs one system call per store;
     * the page fault it takes is one the store would have taken.
     */
    private void populate(final int index, final int inWindow, final int n, final long pos)
    {
        final long address = windowAddresses[index] + inWindow;
        final long start = address & -(long)PAGE_SIZE;
        while (true)
        {
            try
            {
                NativeIo.Direct.madvise(start, address + n - start, NativeIo.MADV_POPULATE_WRITE);
                return;
            }
            catch (final LastErrorException e)
            {
                if (e.getErrorCode() == EINTR)
                {
                    continue;
                }
                if (e.getErrorCode() == NativeIo.EINVAL)
                {
                    // A kernel before 5.14: stores stay unguarded, so direct buffers go through pwrite instead.
                    populate = false;
                    return;
                }
                throw DiskWriteException.write(path, size, pos, n, 0, e);
            }
        }
    }

    /** Writes {@code length} zero bytes at {@code offset}. */
    public void writeZeros(final long offset, final long length)
    {
        checkRange(offset, length);
        final ByteBuffer zeros = ZeroBlocks.ZEROS;
        long done = 0;
        while (done < length)
        {
            final int n = (int)Math.min(length - done, zeros.capacity());
            write(offset + done, zeros.duplicate().limit(n));
            done += n;
        }
    }

    /** True when every byte of {@code [offset, offset+length)} is zero. */
    public boolean isZero(final long offset, final long length)
    {
        checkRange(offset, length);
        long pos = offset;
        long done = 0;
        while (done < length)
        {
            final MappedByteBuffer window = windows[(int)(pos >>> windowShift)];
            final int inWindow = (int)(pos & windowMask);
            final int n = (int)Math.min(length - done, window.capacity() - inWindow);
            if (!ZeroBlocks.isZero(window, inWindow, n))
            {
                return false;
            }
            done += n;
            pos += n;
        }
        return true;
    }

    /**
     * The shared window buffer holding {@code offset}; use only absolute-index operations on it, from
     * {@link #indexInWindow(long)}, and never cross its end (aligned blocks never do).
     */
    public ByteBuffer windowFor(final long offset)
    {
        return windows[(int)(offset >>> windowShift)];
    }

    public int indexInWindow(final long offset)
    {
        return (int)(offset & windowMask);
    }

    /** Marks the window holding {@code offset} written, for callers that wrote through {@link #windowFor}. */
    public void touched(final long offset)
    {
        touch((int)(offset >>> windowShift));
    }

    /**
     * Forces every window written since the last flush to stable storage. Serialised, so a flush that
     * returns has seen the end of any flush already in progress (which may have taken a window's flag).
     */
    public synchronized void flush()
    {
        if (failedFlush != null)
        {
            throw DiskWriteException.afterFailedFlush(path, failedFlush);
        }
        for (int i = 0; i < windows.length; i++)
        {
            if (touched.get(i) != 0)
            {
                touched.set(i, 0);
                try
                {
                    windows[i].force();
                }
                catch (final UncheckedIOException | InternalError e)
                {
                    // The kernel reports a writeback error once and may drop the pages: a later flush
                    // would "succeed" over lost data. Every later flush fails too.
                    touched.set(i, 1);
                    failedFlush = DiskWriteException.flush(path, e);
                    throw failedFlush;
                }
            }
        }
    }

    /**
     * Forces every dirty page of the file to disk, whoever wrote it (a killed process's mapping included:
     * the page cache is shared), unlike {@link #flush}, which forces only what this process touched.
     */
    public void forceFile()
    {
        try
        {
            channel.force(true);
        }
        catch (final IOException e)
        {
            throw DiskWriteException.flush(path, e);
        }
    }

    /** Deallocates a range of an image file so it reads as zeros; writes zeros where that is not possible. */
    public void zeroRange(final long offset, final long length)
    {
        checkRange(offset, length);
        if (isZero(offset, length))
        {
            return;
        }
        if (blockDevice || !NativeIo.punchHole(path, offset, length))
        {
            writeZeros(offset, length);
            return;
        }
        // The punch went around the mapping; marking its windows makes the next flush force the
        // file, so a FLUSH after a TRIM covers the deallocation too.
        for (long at = offset; at < offset + length; at = ((at >>> windowShift) + 1) << windowShift)
        {
            touch((int)(at >>> windowShift));
        }
    }

    /** Throws {@link IndexOutOfBoundsException} naming the range unless it lies inside the volume. */
    public void checkRange(final long offset, final long length)
    {
        if (offset < 0 || length < 0 || offset > size - length)
        {
            throw new IndexOutOfBoundsException("offset=" + offset + " length=" + length + ": outside volume "
                + path + " of " + size + " bytes");
        }
    }

    private void touch(final int index)
    {
        if (touched.get(index) == 0)
        {
            touched.set(index, 1);
        }
    }

    @Override
    public void close() throws IOException
    {
        flush();
        NativeIo.close(fd);
        channel.close();
    }
}
