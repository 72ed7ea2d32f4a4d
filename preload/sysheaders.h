/* The system headers every interposed prototype needs, in one place. */
#ifndef BYP_SYSHEADERS_H
#define BYP_SYSHEADERS_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Shared between libbypass.so and the engine it loads (libbypass-engine.so): exported with a
 * byp_ prefix, never part of the program-facing API. */
#define BYP_SHARED __attribute__((visibility("default")))

#endif
