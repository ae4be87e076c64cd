# Fails when a file of a no-OS layer (src/core, src/config, src/pool, src/dmapool, src/vfio/iova.*,
# src/vfio/in_use.*, src/shared/layout.*, src/nvme) includes
# an OS header or the os layer: every system call lives in src/os (docs/design.md).
# src/nvme (the NVMe driver, reaching its registers through the public
# VfioDevice) includes no layer at all: only itself and the public headers.
set(_bad "")
foreach(layer core config pool dmapool vfio/iova vfio/in_use shared/layout nvme)
  if(layer MATCHES "/")  # pure logic beside OS code
    file(GLOB _files ${SRC}/${layer}.cpp ${SRC}/${layer}.hpp)
  else()
    file(GLOB _files ${SRC}/${layer}/*.cpp ${SRC}/${layer}/*.hpp)
  endif()
  foreach(f IN LISTS _files)
    file(STRINGS ${f} _lines REGEX "^[ \t]*#[ \t]*include")
    foreach(l IN LISTS _lines)
      if(l MATCHES "<sys/|<unistd\\.h>|<fcntl\\.h>|<numaif\\.h>|<numa\\.h>|\"os/|<fstream>|<filesystem>")
        list(APPEND _bad "${f}: ${l}")
      endif()
      if(layer STREQUAL "core" AND l MATCHES "\"(topology|config|backing|pool|os)/")
        list(APPEND _bad "${f}: ${l} (core includes only core/ and numacma/)")
      endif()
      if(layer STREQUAL "nvme" AND l MATCHES "\"" AND NOT l MATCHES "\"(nvme|numacma)/")
        list(APPEND _bad "${f}: ${l} (nvme includes only nvme/ and numacma/: the public API)")
      endif()
    endforeach()
  endforeach()
endforeach()
if(_bad)
  string(REPLACE ";" "\n  " _msg "${_bad}")
  message(FATAL_ERROR "layering broken:\n  ${_msg}")
endif()
message(STATUS "layering ok: core, config, pool, dmapool, the IOVA allocator, the in-use decision, the state-file layout and the NVMe driver make no system calls")
