package io.doppel.storage;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A write to, or a flush of, a volume's image failed: the disk is full or failing. Carries what a caller
 * must decide on: whether the bytes may be missing from stable storage ({@link #flush()}: an msync error
 * can drop pages the page cache had accepted, so what was written earlier is in doubt too) and whether the
 * file system ran out of space (an NBD client gets {@code ENOSPC} rather than {@code EIO}, and the
 * operator is told how much room the image still needs).
 */
public final class DiskWriteException extends UncheckedIOException
{
    private static final long serialVersionUID = 1L;
    private static final int ENOSPC = 28;
    private static final int EDQUOT = 122;

    private final boolean noSpace;
    private final boolean flush;

    private DiskWriteException(final String message, final boolean noSpace, final boolean flush, final Throwable cause)
    {
        super(message, cause instanceof IOException ? (IOException)cause : new IOException(String.valueOf(cause), cause));
        this.noSpace = noSpace;
        this.flush = flush;
    }

    /** The file system holding the image has no room for the write. */
    public boolean noSpace()
    {
        return noSpace;
    }

    /** A flush (msync/fsync) failed: bytes written before it may not be on disk either. */
    public boolean flush()
    {
        return flush;
    }

    /**
     * A failed write of {@code length} bytes at {@code offset}: {@code errno} from pwrite, or 0 for a fault in
     * a store into the mapping (a SIGBUS, which says nothing about its reason: a file system without free
     * space is then taken to be the reason).
     */
    static DiskWriteException write(final Path path, final long size, final long offset, final int length,
        final int errno, final Throwable cause)
    {
        final long free = usableSpace(path);
        final boolean full = errno == ENOSPC || errno == EDQUOT || (errno == 0 && free < length);
        final String what = "writing " + length + " bytes at offset " + offset + " of " + path + " failed: ";
        if (full)
        {
            final long allocated = NativeIo.allocatedBytes(path);
            return new DiskWriteException(what + "no space left on the file system holding it ("
                + free + " bytes free, the write needs " + length
                + (allocated >= 0 ? "; the image of " + size + " bytes has " + allocated
                    + " allocated and needs up to " + Math.max(0, size - allocated) + " more to be fully written" : "")
                + ")", true, false, cause);
        }
        return new DiskWriteException(what + (errno != 0 ? "errno " + errno + " (" + message(cause) + ")"
            : "I/O error in a store into the mapping (" + message(cause) + ")"), false, false, cause);
    }

    /** A failed flush of the image: what it held in the page cache may be lost. */
    static DiskWriteException flush(final Path path, final Throwable cause)
    {
        return new DiskWriteException("forcing " + path + " to disk failed: " + message(cause)
            + "; what was written since the last good flush may not be on disk", false, true, cause);
    }

    /** An earlier flush failed: no later flush may report success (the kernel reports a writeback error once). */
    static DiskWriteException afterFailedFlush(final Path path, final DiskWriteException first)
    {
        return new DiskWriteException("an earlier flush of " + path + " failed (" + first.getMessage()
            + "): writes since then cannot be made durable through this handle; fix the disk and restart the daemon",
            false, true, first);
    }

    private static String message(final Throwable cause)
    {
        return cause == null ? "unknown" : cause.getMessage() != null ? cause.getMessage() : cause.toString();
    }

    private static long usableSpace(final Path path)
    {
        try
        {
            return Files.getFileStore(path).getUsableSpace();
        }
        catch (final IOException | RuntimeException e)
        {
            return Long.MAX_VALUE; // unknown: do not claim the disk is full
        }
    }
}
