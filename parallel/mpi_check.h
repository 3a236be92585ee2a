/* mpi_check.h: every MPI call goes through MPI_CHECK, which names the call and MPI's reason. */
#ifndef MEGATRAIN_MPI_CHECK_H
#define MEGATRAIN_MPI_CHECK_H

#include "base/util.h"

#include <mpi.h>

#define MPI_CHECK(call)                                                                              \
    do {                                                                                             \
        int mpi_check_rc_ = (call);                                                                  \
        if (mpi_check_rc_ != MPI_SUCCESS) {                                                          \
            char mpi_check_msg_[MPI_MAX_ERROR_STRING];                                               \
            int mpi_check_len_ = 0;                                                                  \
            MPI_Error_string(mpi_check_rc_, mpi_check_msg_, &mpi_check_len_);                        \
            fail("%s:%d: %s: %s", __FILE__, __LINE__, #call, mpi_check_msg_);                        \
        }                                                                                            \
    } while (0)

#endif
