# Writes backend_id.h: a digest of the sources that decide what a backend
# produces, so the toolchain identity changes whenever the backend's code does
# (a farm never mixes backends of two thinfarm builds).
#   cmake -DOUT=file -DLLVM=version -P backend_id.cmake -- SOURCES...
set(all "${LLVM}")
set(collect OFF)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE 0 ${last})
  if(collect)
    file(SHA256 "${CMAKE_ARGV${i}}" h)
    string(APPEND all ";${h}")
  elseif("${CMAKE_ARGV${i}}" STREQUAL "--")
    set(collect ON)
  endif()
endforeach()
string(SHA256 id "${all}")
string(SUBSTRING "${id}" 0 16 id)
set(text "#define THINFARM_BACKEND_ID \"${id}\"\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE "${OUT}" "${text}")
endif()
