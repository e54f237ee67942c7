package io.doppel.daemon;

import org.junit.jupiter.api.Test;

import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;

import static org.assertj.core.api.Assertions.assertThat;

/** The JDK's file-system errors carry only a path; the daemon's start error says what happened to it. */
class StartErrorsTest
{
    @Test
    void fileSystemErrorsSayWhatHappened()
    {
        assertThat(DoppelNode.describe(new AccessDeniedException("/srv/images/vm1.img")))
            .startsWith("/srv/images/vm1.img: permission denied (the daemon runs as user ")
            .endsWith("; under systemd, is the path in ReadWritePaths=?)");
        assertThat(DoppelNode.describe(new NoSuchFileException("/srv/x"))).isEqualTo("/srv/x: no such file or directory");
        assertThat(DoppelNode.describe(new FileSystemException("/srv/y", null, "Read-only file system")))
            .isEqualTo("/srv/y: Read-only file system");
        assertThat(DoppelNode.describe(new java.io.IOException("image is empty"))).isEqualTo("image is empty");
    }
}
