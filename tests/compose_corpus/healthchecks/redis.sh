# project file
