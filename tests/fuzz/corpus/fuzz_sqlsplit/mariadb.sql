INSERT INTO `a;b` VALUES ('it\'s; fine'); # gone;
SELECT 2